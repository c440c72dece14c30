package distribution

import (
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/berth-dev/berth/internal/errdefs"
)

// LoopbackOnlyEnv, set to 1, makes every Client refuse to contact a registry
// (or a token realm) outside 127.0.0.0/8 and ::1. The test suite sets it
// (hack/test.sh) so that a typo in an image name can never send a test to
// Docker Hub; the check happens before any name is resolved.
const LoopbackOnlyEnv = "BERTH_REGISTRY_LOOPBACK_ONLY"

// Guard returns rt, wrapped to refuse hosts outside loopback when
// LoopbackOnlyEnv is set: for the daemon's other downloads (an import from
// a URL), under the same safety net as registries.
func Guard(rt http.RoundTripper) http.RoundTripper {
	if os.Getenv(LoopbackOnlyEnv) == "1" {
		return loopbackOnly{next: rt}
	}
	return rt
}

type loopbackOnly struct{ next http.RoundTripper }

func (l loopbackOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isLoopbackHost(req.URL.Hostname()) {
		return nil, fmt.Errorf("refusing to contact %s: %s=1 allows loopback registries only: %w",
			req.URL.Host, LoopbackOnlyEnv, errdefs.ErrPermissionDenied)
	}
	return l.next.RoundTrip(req)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
