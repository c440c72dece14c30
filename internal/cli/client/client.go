// Package client connects the berth CLI to a daemon: it picks the address
// from the environment, negotiates the API version, speaks exactly the
// Engine API calls the CLI makes, and turns transport failures into one
// sentence that says what to do.
//
// It is berth's own small client rather than moby's: every package linked
// into bin/berth runs its initialisation on every process start, and moby's
// client brings the distribution reference regexps and OpenTelemetry with
// it (about a millisecond per `berth` call). The request and response
// bodies are moby's plain API types.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultHost is where `berth daemon` listens unless told otherwise.
const DefaultHost = "unix:///run/berth/berth.sock"

// API versions this client speaks: it asks for the daemon's version capped
// at MaxAPIVersion, and refuses daemons older than MinAPIVersion.
const (
	MaxAPIVersion = "1.56"
	MinAPIVersion = "1.40"
)

// dummyHost is the Host header on unix sockets, where there is no host
// name; docker's clients send the same.
const dummyHost = "api.moby.localhost"

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

// Client is an Engine API client for one daemon. Methods are safe for
// concurrent use.
type Client struct {
	host     string // as given, for messages
	network  string // "unix" or "tcp"
	addr     string // socket path or host:port
	basePath string // a tcp URL's path prefix
	urlHost  string // what goes in request URLs
	headers  map[string]string
	hc       *http.Client

	mu         sync.Mutex
	version    string
	negotiated bool
}

// New returns an API client for host. Nothing is dialled until the first
// call; the first call pings to negotiate the API version, as docker does.
func New(host string) (*Client, error) {
	return NewWithHeaders(host, nil)
}

// NewWithHeaders is New with extra headers on every request.
func NewWithHeaders(host string, headers map[string]string) (*Client, error) {
	c := &Client{host: host, headers: headers}
	network, rest, ok := strings.Cut(host, "://")
	if !ok {
		return nil, fmt.Errorf("bad daemon address %q: want unix:///path or tcp://host:port", host)
	}
	switch network {
	case "unix":
		if rest == "" {
			return nil, fmt.Errorf("bad daemon address %q: no socket path", host)
		}
		c.network, c.addr, c.urlHost = "unix", rest, dummyHost
	case "tcp", "http":
		u, err := url.Parse("tcp://" + rest)
		if err != nil {
			return nil, fmt.Errorf("bad daemon address %q: %w", host, err)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("bad daemon address %q: no host", host)
		}
		hostPort := u.Host
		if u.Port() == "" {
			hostPort = net.JoinHostPort(u.Hostname(), "2375")
		}
		c.network, c.addr, c.urlHost = "tcp", hostPort, hostPort
		c.basePath = strings.TrimRight(u.Path, "/")
	default:
		return nil, fmt.Errorf("bad daemon address %q: unsupported protocol %q", host, network)
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, c.network, c.addr)
		},
		MaxIdleConns:       6,
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: c.network == "unix",
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c, nil
}

// Explain rewrites errors the user cannot act on into ones they can: a
// daemon that cannot be reached is named, with the command that starts it.
func Explain(err error, host string) error {
	if err == nil {
		return nil
	}
	if IsErrConnectionFailed(err) {
		return fmt.Errorf("cannot connect to berth at %s: is `berth daemon` running?", host)
	}
	return err
}

// ConnectionError is a daemon that could not be reached at all.
type ConnectionError struct{ Err error }

func (e *ConnectionError) Error() string { return "error during connect: " + e.Err.Error() }
func (e *ConnectionError) Unwrap() error { return e.Err }

// IsErrConnectionFailed reports a daemon that could not be reached.
func IsErrConnectionFailed(err error) bool {
	var ce *ConnectionError
	return errors.As(err, &ce)
}

// ClientVersion is the API version in use (MaxAPIVersion before the first
// call has negotiated).
func (c *Client) ClientVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == "" {
		return MaxAPIVersion
	}
	return c.version
}

// negotiate pings the daemon once and settles the API version: the
// daemon's, capped at ours. A daemon that cannot be reached is an error; a
// ping answered oddly leaves requests unversioned, as docker's client does.
func (c *Client) negotiate(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.negotiated {
		return nil
	}
	v, err := c.ping(ctx)
	if err != nil {
		if IsErrConnectionFailed(err) || ctx.Err() != nil {
			return err
		}
		return nil
	}
	switch {
	case v == "":
		v = MaxAPIVersion
	case versionLess(v, MinAPIVersion):
		return &StatusError{Status: http.StatusBadRequest, Message: fmt.Sprintf("API version %s is not supported by this client: the minimum supported API version is %s", v, MinAPIVersion)}
	case versionLess(MaxAPIVersion, v):
		v = MaxAPIVersion
	}
	c.version, c.negotiated = v, true
	return nil
}

// ping asks /_ping (HEAD, then GET for daemons that refuse HEAD) and
// returns the daemon's API-Version header.
func (c *Client) ping(ctx context.Context) (string, error) {
	var lastErr error
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		req, err := http.NewRequestWithContext(ctx, method, "http://"+c.urlHost+c.basePath+"/_ping", nil)
		if err != nil {
			return "", err
		}
		resp, err := c.do(req)
		if err != nil {
			lastErr = err
			if IsErrConnectionFailed(err) {
				return "", err
			}
			continue
		}
		drain(resp)
		if resp.StatusCode == http.StatusOK {
			return resp.Header.Get("Api-Version"), nil
		}
		lastErr = fmt.Errorf("ping: %s", resp.Status)
	}
	return "", lastErr
}

// versionLess compares dotted API versions numerically ("1.9" < "1.40").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// do sends req with the client's headers, turning transport failures into
// ConnectionErrors (except a caller's own cancellation).
func (c *Client) do(req *http.Request) (*http.Response, error) {
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "berth-cli")
	resp, err := c.hc.Do(req)
	if err == nil {
		return resp, nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	if errors.Is(err, os.ErrPermission) {
		return nil, &ConnectionError{fmt.Errorf("permission denied while trying to connect to the daemon at %s", c.host)}
	}
	return nil, &ConnectionError{err}
}

// request is one API call's parts.
type request struct {
	method  string
	path    string // without the version prefix
	query   url.Values
	header  http.Header
	body    io.Reader
	jsonObj any // marshalled as the body when set
}

// send negotiates if needed, sends r on its versioned path and returns the
// response, or the daemon's error (the body then already closed).
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if err := responseError(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func (c *Client) newRequest(ctx context.Context, r request) (*http.Request, error) {
	if err := c.negotiate(ctx); err != nil {
		return nil, err
	}
	body := r.body
	header := r.header
	if header == nil {
		header = http.Header{}
	}
	if r.jsonObj != nil {
		b, err := jsonBody(r.jsonObj)
		if err != nil {
			return nil, err
		}
		if b != nil {
			body = b
			header.Set("Content-Type", "application/json")
		}
	}
	u := url.URL{Scheme: "http", Host: c.urlHost, Path: c.apiPath(r.path), RawQuery: r.query.Encode()}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return req, nil
}

func (c *Client) apiPath(p string) string {
	c.mu.Lock()
	v := c.version
	c.mu.Unlock()
	if v == "" {
		return c.basePath + p
	}
	return c.basePath + "/v" + v + p
}

// drain reads a little of what is left of a body, so the connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 512)
	_ = resp.Body.Close()
}
