// Package metrics counts the registry's HTTP traffic and writes it in the
// Prometheus text exposition format. It is hand-written because the few
// series the registry exports do not justify the Prometheus client library.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets cover a manifest HEAD (sub-millisecond) to a large layer
// upload (minutes).
var latencyBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120}

type reqKey struct {
	route, method, code string
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

// Registry holds the counters. The zero value is not usable; use New.
type Registry struct {
	mu       sync.Mutex
	requests map[reqKey]uint64
	latency  map[string]*histogram // by route
	bytesIn  map[string]uint64     // by route
	bytesOut map[string]uint64     // by route

	uploadsInFlight atomic.Int64
	gcRuns          atomic.Uint64
	gcDeleted       atomic.Uint64
}

// New returns an empty Registry.
func New() *Registry {
	return &Registry{
		requests: map[reqKey]uint64{},
		latency:  map[string]*histogram{},
		bytesIn:  map[string]uint64{},
		bytesOut: map[string]uint64{},
	}
}

// Observe records one finished request. route is a fixed label such as
// "blob" or "manifest", never the path, so series stay few.
func (m *Registry) Observe(route, method string, code int, in, out int64, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqKey{route, method, strconv.Itoa(code)}]++
	h := m.latency[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets))}
		m.latency[route] = h
	}
	s := d.Seconds()
	for i, b := range latencyBuckets {
		if s <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += s
	h.n++
	m.bytesIn[route] += uint64(max(in, 0))
	m.bytesOut[route] += uint64(max(out, 0))
}

// UploadStarted and UploadFinished track uploads with a request in flight.
func (m *Registry) UploadStarted()  { m.uploadsInFlight.Add(1) }
func (m *Registry) UploadFinished() { m.uploadsInFlight.Add(-1) }

// GCRun records one garbage collection that deleted n blobs.
func (m *Registry) GCRun(n int) {
	m.gcRuns.Add(1)
	m.gcDeleted.Add(uint64(n))
}

// ServeHTTP writes the metrics.
func (m *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.WriteTo(w)
}

// WriteTo writes all series in the text format.
func (m *Registry) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	m.mu.Lock()
	defer m.mu.Unlock()

	fmt.Fprintf(cw, "# HELP berth_registry_http_requests_total HTTP requests by route, method and status code.\n")
	fmt.Fprintf(cw, "# TYPE berth_registry_http_requests_total counter\n")
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.route != b.route {
			return a.route < b.route
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.code < b.code
	})
	for _, k := range keys {
		fmt.Fprintf(cw, "berth_registry_http_requests_total{route=%q,method=%q,code=%q} %d\n", k.route, k.method, k.code, m.requests[k])
	}

	routes := sortedKeys(m.latency)
	fmt.Fprintf(cw, "# HELP berth_registry_http_request_duration_seconds Time to serve a request, by route.\n")
	fmt.Fprintf(cw, "# TYPE berth_registry_http_request_duration_seconds histogram\n")
	for _, route := range routes {
		h := m.latency[route]
		var cum uint64
		for i, b := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(cw, "berth_registry_http_request_duration_seconds_bucket{route=%q,le=%q} %d\n", route, strconv.FormatFloat(b, 'g', -1, 64), cum)
		}
		fmt.Fprintf(cw, "berth_registry_http_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", route, h.n)
		fmt.Fprintf(cw, "berth_registry_http_request_duration_seconds_sum{route=%q} %g\n", route, h.sum)
		fmt.Fprintf(cw, "berth_registry_http_request_duration_seconds_count{route=%q} %d\n", route, h.n)
	}
	writeByRoute(cw, "berth_registry_http_request_bytes_total", "Request body bytes received, by route.", m.bytesIn)
	writeByRoute(cw, "berth_registry_http_response_bytes_total", "Response body bytes sent, by route.", m.bytesOut)

	fmt.Fprintf(cw, "# HELP berth_registry_uploads_in_flight Blob upload requests being received.\n")
	fmt.Fprintf(cw, "# TYPE berth_registry_uploads_in_flight gauge\n")
	fmt.Fprintf(cw, "berth_registry_uploads_in_flight %d\n", m.uploadsInFlight.Load())
	fmt.Fprintf(cw, "# HELP berth_registry_gc_runs_total Garbage collections run.\n")
	fmt.Fprintf(cw, "# TYPE berth_registry_gc_runs_total counter\n")
	fmt.Fprintf(cw, "berth_registry_gc_runs_total %d\n", m.gcRuns.Load())
	fmt.Fprintf(cw, "# HELP berth_registry_gc_deleted_blobs_total Blobs deleted by garbage collection.\n")
	fmt.Fprintf(cw, "# TYPE berth_registry_gc_deleted_blobs_total counter\n")
	fmt.Fprintf(cw, "berth_registry_gc_deleted_blobs_total %d\n", m.gcDeleted.Load())
	return cw.n, cw.err
}

func writeByRoute(w io.Writer, name, help string, v map[string]uint64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	for _, route := range sortedKeys(v) {
		fmt.Fprintf(w, "%s{route=%q} %d\n", name, route, v[route])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
