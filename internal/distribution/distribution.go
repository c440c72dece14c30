// Package distribution pulls images from and pushes them to OCI
// distribution / Docker v2 registries, into and out of berth's image store.
//
// Registry protocol, authentication (bearer tokens and basic auth, with
// credentials from the docker config file as docker stores them) and the
// push side come from go-containerregistry. Pulls fetch blobs with their own
// HTTP requests over its authenticated transport, so that:
//
//   - each byte is hashed once, by the content store's ingest, on its way to
//     disk; nothing counts as pulled until that digest matches;
//   - a layer whose turn to unpack has come is unpacked while it downloads
//     (the download is teed into the unpacker), and later layers download
//     in parallel (bounded) meanwhile, then unpack from the content store;
//   - an interrupted download resumes from its partial ingest with a Range
//     request, and layers already in the store are not fetched again.
//
// Plain HTTP is used for localhost, 127.0.0.0/8, ::1 and the registries
// listed in Options.Insecure; Docker Hub pulls can go through mirrors.
package distribution

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// Defaults, as docker's daemon has them.
const (
	DefaultMaxDownloads = 3
	DefaultMaxUploads   = 5
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Keychain finds credentials; nil means the docker config file
	// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), with its
	// credential helpers.
	Keychain authn.Keychain
	// Insecure lists registries reached over plain HTTP besides the
	// loopback ones: "host[:port]" or a CIDR ("10.0.0.0/8").
	Insecure []string
	// Mirrors maps a registry domain ("docker.io") to mirrors tried in
	// order before it for pulls: "host[:port]" or "http(s)://host[:port]".
	Mirrors map[string][]string
	// MaxDownloads and MaxUploads bound parallel layer transfers per
	// operation; zero means the defaults.
	MaxDownloads, MaxUploads int
	// Transport is the base HTTP transport; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Client pulls and pushes images of one image store.
type Client struct {
	images   *image.Service
	keychain authn.Keychain
	opts     Options
	base     http.RoundTripper
	log      *slog.Logger
}

// New returns a Client for images.
func New(images *image.Service, opts Options) *Client {
	c := &Client{images: images, keychain: opts.Keychain, opts: opts, base: opts.Transport, log: opts.Logger}
	if c.keychain == nil {
		c.keychain = authn.DefaultKeychain
	}
	if c.opts.MaxDownloads <= 0 {
		c.opts.MaxDownloads = DefaultMaxDownloads
	}
	if c.opts.MaxUploads <= 0 {
		c.opts.MaxUploads = DefaultMaxUploads
	}
	if c.base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 2 * time.Minute
		c.base = t
	}
	c.base = Guard(c.base)
	if c.log == nil {
		c.log = images.Logger()
	}
	return c
}

// endpoint is one registry host to talk to for a repository.
type endpoint struct {
	host     string // host[:port], "docker.io" for Docker Hub
	insecure bool
	mirror   bool
}

// endpoints lists where to pull domain's repositories from: its mirrors,
// then itself.
func (c *Client) endpoints(domain string) []endpoint {
	var out []endpoint
	for _, m := range c.opts.Mirrors[domain] {
		host, insecure := m, false
		switch {
		case strings.HasPrefix(m, "http://"):
			host, insecure = strings.TrimPrefix(m, "http://"), true
		case strings.HasPrefix(m, "https://"):
			host = strings.TrimPrefix(m, "https://")
		}
		host = strings.TrimSuffix(host, "/")
		out = append(out, endpoint{host: host, insecure: insecure || c.isInsecure(host), mirror: true})
	}
	return append(out, endpoint{host: domain, insecure: c.isInsecure(domain)})
}

// isInsecure reports a registry spoken to over plain HTTP: loopback ones
// (as docker does) and the configured ones.
func (c *Client) isInsecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, s := range c.opts.Insecure {
		if s == host || s == h {
			return true
		}
		if _, n, err := net.ParseCIDR(s); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// repoClient talks to one repository of one registry over an
// authenticated transport.
type repoClient struct {
	repo   name.Repository
	http   *http.Client
	scheme string
}

func (c *Client) repository(ep endpoint, path string) (name.Repository, error) {
	var opts []name.Option
	if ep.insecure {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(ep.host, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("registry %q: %v: %w", ep.host, err, errdefs.ErrInvalidArgument)
	}
	return reg.Repo(path), nil
}

// connect pings the registry, authenticates for scopes and returns a client
// for repository path.
func (c *Client) connect(ctx context.Context, ep endpoint, path string, actions ...string) (*repoClient, error) {
	repo, err := c.repository(ep, path)
	if err != nil {
		return nil, err
	}
	auth, err := c.keychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	var scopes []string
	for _, a := range actions {
		scopes = append(scopes, repo.Scope(a))
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, c.base, scopes)
	if err != nil {
		return nil, classify(fmt.Errorf("registry %s: %w", ep.host, err))
	}
	return &repoClient{repo: repo, http: &http.Client{Transport: tr}, scheme: repo.Scheme()}, nil
}

func (rc *repoClient) url(kind, ident string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", rc.scheme, rc.repo.RegistryStr(), rc.repo.RepositoryStr(), kind, ident)
}

// get sends a GET and checks the status against ok.
func (rc *repoClient) get(ctx context.Context, url string, hdr http.Header, ok ...int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := rc.http.Do(req)
	if err != nil {
		return nil, classify(err)
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		resp.Body.Close()
		return nil, classify(err)
	}
	return resp, nil
}

// classify wraps a registry or network error with its errdefs class:
// 401 and 403 are PermissionDenied, 404 NotFound, 429 and 5xx and network
// failures Unavailable (transient: a retry may work), other statuses
// InvalidArgument.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch s := terr.StatusCode; {
		case s == http.StatusUnauthorized:
			return fmt.Errorf("%w (authentication required or credentials refused): %w", err, errdefs.ErrPermissionDenied)
		case s == http.StatusForbidden:
			return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
		case s == http.StatusNotFound:
			return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		case s == http.StatusTooManyRequests || s >= 500:
			return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
		default:
			return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	return err
}
