package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/api/types/registry"

	"github.com/berth-dev/berth/internal/distribution"
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
	raw, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
	}
	if err != nil {
		return nil, badParam("invalid X-Registry-Auth header: %v", err)
	}
	var ac registry.AuthConfig
	if err := json.Unmarshal(raw, &ac); err != nil {
		return nil, badParam("invalid X-Registry-Auth header: %v", err)
	}
	if ac == (registry.AuthConfig{}) {
		return staticKeychain{authn.Anonymous}, nil
	}
	return staticKeychain{authn.FromConfig(authn.AuthConfig{
		Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	})}, nil
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
	opts := distribution.Options{
		Keychain: kc, Insecure: s.info.InsecureRegistries, Transport: s.transport, Logger: s.log,
	}
	if len(s.info.Mirrors) > 0 {
		opts.Mirrors = map[string][]string{"docker.io": s.info.Mirrors}
	}
	return distribution.New(s.images, opts), nil
}
