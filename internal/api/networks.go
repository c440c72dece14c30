package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/engine"
)

func (s *Server) networkRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /networks", s.networkList)
	m.HandleFunc("GET /networks/{id}", s.networkInspect)
	m.HandleFunc("POST /networks/create", s.networkCreate)
	m.HandleFunc("DELETE /networks/{id}", s.networkRemove)
	m.HandleFunc("POST /networks/{id}/connect", s.networkConnect)
	m.HandleFunc("POST /networks/{id}/disconnect", s.networkDisconnect)
	m.HandleFunc("POST /networks/prune", s.networkPrune)
}

// networkMatches applies docker's network list filters.
func networkMatches(f map[string][]string, n network.Inspect) bool {
	builtin := n.Name == "bridge" || n.Name == "host" || n.Name == "none"
	return matchAny(f["name"], func(v string) bool { return strings.Contains(n.Name, v) }) &&
		matchAny(f["id"], func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		matchAny(f["driver"], func(v string) bool { return n.Driver == v }) &&
		matchAny(f["scope"], func(v string) bool { return n.Scope == v }) &&
		matchAny(f["type"], func(v string) bool { return (v == "builtin") == builtin }) &&
		matchAny(f["dangling"], func(v string) bool { return (v == "true" || v == "1") == (len(n.Containers) == 0 && !builtin) }) &&
		labelsMatch(f["label"], n.Labels)
}

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) {
	f, err := listFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	for k, vs := range f {
		switch k {
		case "name", "id", "driver", "scope", "label", "dangling":
		case "type":
			for _, v := range vs {
				if v != "custom" && v != "builtin" {
					s.writeErr(w, badParam("invalid filter: 'type'='%s'", v))
					return
				}
			}
		default:
			s.writeErr(w, badParam("invalid filter '%s'", k))
			return
		}
	}
	out := []network.Summary{}
	for _, n := range s.eng.Networks() {
		if networkMatches(f, n) {
			out = append(out, network.Summary{Network: n.Network})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) {
	n, err := s.eng.Network(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) {
	var req network.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	res, err := s.eng.CreateNetwork(r.Context(), req)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

func (s *Server) networkRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.RemoveNetwork(r.Context(), r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request) {
	var req network.ConnectRequest
	s.networkMember(w, r, &req, &req.Container, func() error {
		return s.eng.ConnectNetwork(r.Context(), r.PathValue("id"), req.Container, req.EndpointConfig)
	})
}

func (s *Server) networkDisconnect(w http.ResponseWriter, r *http.Request) {
	var req network.DisconnectRequest
	s.networkMember(w, r, &req, &req.Container, func() error {
		return s.eng.DisconnectNetwork(r.Context(), r.PathValue("id"), req.Container, req.Force)
	})
}

// networkMember decodes a connect/disconnect body into req, checks that it
// names a container, and runs do.
func (s *Server) networkMember(w http.ResponseWriter, r *http.Request, req any, ctr *string, do func() error) {
	if err := decodeBody(r, req); err != nil {
		s.writeErr(w, err)
		return
	}
	if *ctr == "" {
		s.writeErr(w, badParam("container is required"))
		return
	}
	if err := do(); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) networkPrune(w http.ResponseWriter, r *http.Request) {
	keepBy, err := pruneFilters(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	keep := func(n network.Inspect) bool { return keepBy(n.Created, n.Labels) }
	names, err := s.eng.PruneNetworks(r.Context(), keep)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: nonNil(names)})
}

// pruneFilters reads the filters of docker's prune endpoints: until (a
// time) and label / label!. The result says which objects to keep.
func pruneFilters(r *http.Request) (keep func(created time.Time, labels map[string]string) bool, err error) {
	f, err := listFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return nil, err
	}
	var until time.Time
	for k, vals := range f {
		switch k {
		case "label", "label!":
		case "until":
			if len(vals) != 1 {
				return nil, badParam("more than one until filter")
			}
			if until, err = eventTime(vals[0]); err != nil {
				return nil, err
			}
		default:
			return nil, badParam("invalid filter '%s'", k)
		}
	}
	return func(created time.Time, labels map[string]string) bool {
		if !until.IsZero() && created.After(until) {
			return true
		}
		if len(f["label"]) > 0 && !labelsMatch(f["label"], labels) {
			return true
		}
		for _, l := range f["label!"] {
			if labelsMatch([]string{l}, labels) {
				return true
			}
		}
		return false
	}, nil
}

// legacyNetworkSettings adds the top-level fields API versions before 1.52
// carry (the default bridge's endpoint, as docker fills them): scripts
// template {{.NetworkSettings.IPAddress}}.
type legacyNetworkSettings struct {
	*container.NetworkSettings
	Bridge                 string
	HairpinMode            bool
	LinkLocalIPv6Address   string
	LinkLocalIPv6PrefixLen int
	SecondaryIPAddresses   []string
	SecondaryIPv6Addresses []string
	EndpointID             string
	Gateway                string
	GlobalIPv6Address      string
	GlobalIPv6PrefixLen    int
	IPAddress              string
	IPPrefixLen            int
	IPv6Gateway            string
	MacAddress             string
}

type legacyInspectResponse struct {
	container.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

func legacyInspect(resp container.InspectResponse) any {
	if resp.NetworkSettings == nil {
		return resp
	}
	ns := &legacyNetworkSettings{NetworkSettings: resp.NetworkSettings}
	if ep := resp.NetworkSettings.Networks["bridge"]; ep != nil {
		ns.EndpointID, ns.IPPrefixLen = ep.EndpointID, ep.IPPrefixLen
		if ep.IPAddress.IsValid() {
			ns.IPAddress = ep.IPAddress.String()
		}
		if ep.Gateway.IsValid() {
			ns.Gateway = ep.Gateway.String()
		}
		if len(ep.MacAddress) > 0 {
			ns.MacAddress = ep.MacAddress.String()
		}
	}
	return legacyInspectResponse{InspectResponse: resp, NetworkSettings: ns}
}

// onNetwork is ps's network filter: a network name, or an ID or its prefix.
func onNetwork(c engine.Container, v string) bool {
	for name, es := range c.Networks {
		if name == v || (es != nil && es.NetworkID != "" && strings.HasPrefix(es.NetworkID, v)) {
			return true
		}
	}
	return false
}
