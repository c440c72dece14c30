package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/moby/api/types/registry"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/errdefs"
)

// registryAuth reads the X-Registry-Auth header (base64url JSON, padded or
// not, as the docker CLI sends it). Docker's daemon uses only these
// credentials, never a config file of its own, so without the header a
// pull or push is anonymous.
func registryAuth(r *http.Request) (authn.Keychain, error) {
	h := strings.TrimSpace(r.Header.Get("X-Registry-Auth"))
	if h == "" {
		return staticKeychain{authn.Anonymous}, nil
	}
	var ac registry.AuthConfig
	if err := decodeAuthHeader("X-Registry-Auth", h, &ac); err != nil {
		return nil, err
	}
	if ac == (registry.AuthConfig{}) {
		return staticKeychain{authn.Anonymous}, nil
	}
	return staticKeychain{authn.FromConfig(authn.AuthConfig{
		Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	})}, nil
}

// decodeAuthHeader decodes a credentials header (base64url JSON, padded
// or not, as the docker CLI sends it) into v.
func decodeAuthHeader(name, h string, v any) error {
	raw, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
	}
	if err == nil {
		err = json.Unmarshal(raw, v)
	}
	if err != nil {
		return badParam("invalid %s header: %v", name, err)
	}
	return nil
}

// staticKeychain answers every registry with the request's credentials:
// the CLI already picked them for the registry of the image it names.
type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// distributionClient makes a client for one request's credentials.
func (s *Server) distributionClient(r *http.Request) (*distribution.Client, error) {
	kc, err := registryAuth(r)
	if err != nil {
		return nil, err
	}
	return s.distributionClientFor(kc), nil
}

// distributionClientFor makes a client with the daemon's registry
// settings and the given credentials.
func (s *Server) distributionClientFor(kc authn.Keychain) *distribution.Client {
	opts := distribution.Options{
		Keychain: kc, Insecure: s.info.InsecureRegistries, Transport: s.transport, Logger: s.log,
	}
	if len(s.info.Mirrors) > 0 {
		opts.Mirrors = map[string][]string{"docker.io": s.info.Mirrors}
	}
	return distribution.New(s.images, opts)
}

// systemAuth serves POST /auth (docker login): the credentials are checked
// against the registry by an authenticated request to its /v2/ endpoint,
// through go-containerregistry's transport (which does docker's token
// exchange when the registry asks for bearer tokens). Nothing is stored:
// the CLI keeps the credentials and sends them with each pull and push.
func (s *Server) systemAuth(w http.ResponseWriter, r *http.Request) {
	var ac registry.AuthConfig
	if err := decodeBody(r, &ac); err != nil {
		s.writeErr(w, err)
		return
	}
	host := registryHost(ac.ServerAddress)
	reg, err := name.NewRegistry(host, s.registryNameOpts(host)...)
	if err != nil {
		s.writeErr(w, badParam("invalid registry address %q: %v", ac.ServerAddress, err))
		return
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken})
	ctx := r.Context()
	rt, err := transport.NewWithContext(ctx, reg, auth, s.transport, []string{reg.Scope(transport.PullScope)})
	if err == nil {
		var req *http.Request
		endpoint := reg.Scheme() + "://" + reg.RegistryStr() + "/v2/"
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil); err == nil {
			var resp *http.Response
			if resp, err = (&http.Client{Transport: rt}).Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					// docker's words for a refused login.
					s.writeErr(w, fmt.Errorf("login attempt to %s failed with status: %d %s: %w",
						endpoint, resp.StatusCode, http.StatusText(resp.StatusCode), errdefs.ErrPermissionDenied))
					return
				}
			}
		}
	}
	if err != nil {
		s.writeErr(w, fmt.Errorf("login to %s: %v: %w", host, err, errdefs.ErrPermissionDenied))
		return
	}
	writeJSON(w, http.StatusOK, registry.AuthResponse{Status: "Login Succeeded"})
}

// registryHost turns a login's server address ("https://host/v1/",
// "host:port") into host[:port]; Docker Hub's legacy address is docker.io.
func registryHost(addr string) string {
	if addr == "" {
		return name.DefaultRegistry
	}
	h := addr
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	h, _, _ = strings.Cut(h, "/")
	if h == "index.docker.io" || h == "registry-1.docker.io" {
		return name.DefaultRegistry
	}
	return h
}

// registryNameOpts makes loopback registries and the configured insecure
// ones plain HTTP, as pulls and pushes have them (go-containerregistry
// already treats localhost and 127.0.0.1 so; this adds the daemon's list).
func (s *Server) registryNameOpts(host string) []name.Option {
	opts := []name.Option{name.WeakValidation}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil && ip.IsLoopback() {
		return append(opts, name.Insecure)
	}
	for _, r := range s.info.InsecureRegistries {
		if r == host || r == h {
			return append(opts, name.Insecure)
		}
	}
	return opts
}
