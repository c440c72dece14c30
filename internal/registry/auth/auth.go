// Package auth decides who may do what on the registry: htpasswd users with
// HTTP basic auth, or bearer tokens issued by a token endpoint the registry
// serves itself (the flow docker, podman and skopeo follow when a registry
// answers 401 with a Bearer challenge).
package auth

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Access is one resource and the actions wanted on it, as in a token scope
// "repository:library/busybox:pull,push".
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Repository is the access to a repository for the given actions.
func Repository(name string, actions ...string) Access {
	return Access{Type: "repository", Name: name, Actions: actions}
}

// Catalog is the access /v2/_catalog needs.
var Catalog = Access{Type: "registry", Name: "catalog", Actions: []string{"*"}}

// String renders the access as a scope.
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// ParseScope parses "type:name:action,action". Names may not contain
// colons except in the type's bracketed class, which is dropped.
func ParseScope(s string) (Access, error) {
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Access{}, fmt.Errorf("scope %q: want type:name:actions", s)
	}
	typ := s[:first]
	if i := strings.IndexByte(typ, '('); i >= 0 {
		typ = typ[:i]
	}
	var actions []string
	for a := range strings.SplitSeq(s[last+1:], ",") {
		if a != "" {
			actions = append(actions, a)
		}
	}
	return Access{Type: typ, Name: s[first+1 : last], Actions: actions}, nil
}

// covers reports whether granted allows every action of need.
func covers(granted []Access, need Access) bool {
	for _, want := range need.Actions {
		ok := false
		for _, g := range granted {
			if g.Type == need.Type && g.Name == need.Name &&
				(slices.Contains(g.Actions, want) || slices.Contains(g.Actions, "*")) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Authorizer checks a request against the access it needs.
type Authorizer interface {
	// Authorize returns the authenticated user ("" when anonymous access
	// suffices) or a *Challenge error.
	Authorize(r *http.Request, need []Access) (user string, err error)
}

// Challenge is an authorization failure: the client must (re)authenticate
// with the scheme in Header (the WWW-Authenticate value).
type Challenge struct {
	Header string
	Reason string
}

func (c *Challenge) Error() string { return "authorization failed: " + c.Reason }

// grantable are the actions an authenticated user receives; berth's
// htpasswd users are not split into roles.
var grantable = []string{"pull", "push", "delete", "*"}

// grant returns the part of the requested access a user receives.
func grant(user string, requested []Access) []Access {
	out := []Access{}
	if user == "" {
		return out
	}
	for _, a := range requested {
		var acts []string
		for _, act := range a.Actions {
			if slices.Contains(grantable, act) && !slices.Contains(acts, act) {
				acts = append(acts, act)
			}
		}
		if len(acts) > 0 {
			out = append(out, Access{Type: a.Type, Name: a.Name, Actions: acts})
		}
	}
	return out
}
