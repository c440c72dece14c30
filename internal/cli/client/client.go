// Package client connects the berth CLI to a daemon: it picks the address
// from the environment, negotiates the API version, and turns transport
// failures into one sentence that says what to do.
package client

import (
	"fmt"
	"strings"

	"github.com/moby/moby/client"
)

// DefaultHost is where `berth daemon` listens unless told otherwise.
const DefaultHost = "unix:///run/berth/berth.sock"

// Host is the daemon address: BERTH_HOST wins over DOCKER_HOST, so a shell
// set up for docker can still point berth elsewhere.
func Host(getenv func(string) string) string {
	for _, k := range []string{"BERTH_HOST", "DOCKER_HOST"} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
	}
	return DefaultHost
}

// New returns an API client for host. Nothing is dialled until the first
// call; the first call pings to negotiate the API version, as docker does.
func New(host string) (*client.Client, error) {
	return NewWithHeaders(host, nil)
}

// NewWithHeaders is New with extra headers on every request.
func NewWithHeaders(host string, headers map[string]string) (*client.Client, error) {
	opts := []client.Opt{client.WithHost(host), client.WithAPIVersionNegotiation(), client.WithUserAgent("berth-cli")}
	if len(headers) > 0 {
		opts = append(opts, client.WithHTTPHeaders(headers))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("bad daemon address %q: %w", host, err)
	}
	return c, nil
}

// Explain rewrites errors the user cannot act on into ones they can. The
// moby client's connection error names Docker; ours names berth and the
// command that starts it.
func Explain(err error, host string) error {
	if err == nil {
		return nil
	}
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("cannot connect to berth at %s: is `berth daemon` running?", host)
	}
	return err
}
