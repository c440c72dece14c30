package distribution

import (
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Statuses of Progress events, worded as docker's pull and push output.
const (
	StatusPullingFsLayer    = "Pulling fs layer"
	StatusAlreadyExists     = "Already exists"
	StatusWaiting           = "Waiting"
	StatusDownloading       = "Downloading"
	StatusVerifying         = "Verifying Checksum"
	StatusDownloadComplete  = "Download complete"
	StatusExtracting        = "Extracting"
	StatusPullComplete      = "Pull complete"
	StatusPreparing         = "Preparing"
	StatusPushing           = "Pushing"
	StatusPushed            = "Pushed"
	StatusLayerExists       = "Layer already exists"
	StatusMounted           = "Mounted from"
	StatusDigest            = "Digest"
	StatusDownloadedNewer   = "Downloaded newer image for"
	StatusImageUpToDate     = "Image is up to date for"
	StatusPullingFrom       = "Pulling from"
	StatusPushingRepository = "The push refers to repository"
)

// Progress is one event of a pull or push. Layer events have ID set to the
// layer's short digest (12 hex digits, as docker shows it); events about
// the whole operation have an empty ID and the subject in Detail.
type Progress struct {
	ID      string
	Status  string
	Detail  string // e.g. the repository for "Mounted from", the digest for "Digest"
	Current int64  // bytes done, for Downloading/Extracting/Pushing
	Total   int64  // bytes in all, 0 if unknown
}

// ProgressFunc receives events. Calls are serialised (never concurrent), in
// order per layer; the function should return quickly.
type ProgressFunc func(Progress)

// reporter serialises and throttles events to a ProgressFunc.
type reporter struct {
	mu   sync.Mutex
	fn   ProgressFunc
	last map[string]time.Time
}

// throttle is the minimum interval between byte-count events of one layer.
const throttle = 100 * time.Millisecond

func newReporter(fn ProgressFunc) *reporter {
	return &reporter{fn: fn, last: map[string]time.Time{}}
}

func (r *reporter) emit(p Progress) {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn(p)
}

// bytes emits a byte-count event unless one went out for this layer very
// recently; the final count (current == total) always goes out.
func (r *reporter) bytes(id, status string, current, total int64) {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	key := id + status
	if current != total && now.Sub(r.last[key]) < throttle {
		return
	}
	r.last[key] = now
	r.fn(Progress{ID: id, Status: status, Current: current, Total: total})
}

// counter reports bytes passing through a reader.
type counter struct {
	r      io.Reader
	rep    *reporter
	id     string
	status string
	n      int64
	total  int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 {
		c.rep.bytes(c.id, c.status, c.n, c.total)
	}
	return n, err
}

// ShortID is the 12-hex-digit form docker prints for layers.
func ShortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}
