package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

const (
	onlineCPUsFile  = "/sys/devices/system/cpu/online"
	onlineNodesFile = "/sys/devices/system/node/online"
	// maxCPUIndex bounds the numbers accepted in a list. The kernel's own
	// limit (NR_CPUS) is at most 8192; the bound keeps a typo from being
	// read as a request for four billion CPUs.
	maxCPUIndex = 1 << 16
)

// span is an inclusive range of CPU or memory-node numbers.
type span struct{ lo, hi int }

// parseList parses the kernel's list format, as in cpuset.cpus: "0-3,8,10-11".
// Blanks around items are allowed; an empty list is an error because an
// empty cpuset leaves a container nowhere to run.
func parseList(s string) ([]span, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty list")
	}
	var spans []span
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		loStr, hiStr, isRange := strings.Cut(item, "-")
		lo, err := parseIndex(loStr)
		if err != nil {
			return nil, fmt.Errorf("item %q: %w", item, err)
		}
		hi := lo
		if isRange {
			if hi, err = parseIndex(hiStr); err != nil {
				return nil, fmt.Errorf("item %q: %w", item, err)
			}
			if hi < lo {
				return nil, fmt.Errorf("item %q: range runs backwards", item)
			}
		}
		spans = append(spans, span{lo, hi})
	}
	return spans, nil
}

func parseIndex(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a CPU or node number", s)
	}
	if n > maxCPUIndex {
		return 0, fmt.Errorf("%d is beyond any machine (max %d)", n, maxCPUIndex)
	}
	return n, nil
}

// uncovered returns the parts of want that no span of have covers.
func uncovered(want, have []span) []span {
	var out []span
	for _, w := range want {
		for n := w.lo; n <= w.hi; n++ {
			if slices.ContainsFunc(have, func(h span) bool { return h.lo <= n && n <= h.hi }) {
				continue
			}
			if len(out) > 0 && out[len(out)-1].hi == n-1 {
				out[len(out)-1].hi = n
			} else {
				out = append(out, span{n, n})
			}
		}
	}
	return out
}

func formatList(spans []span) string {
	parts := make([]string, len(spans))
	for i, s := range spans {
		if s.lo == s.hi {
			parts[i] = strconv.Itoa(s.lo)
		} else {
			parts[i] = strconv.Itoa(s.lo) + "-" + strconv.Itoa(s.hi)
		}
	}
	return strings.Join(parts, ",")
}

// checkCPUList checks that every CPU or memory node in list is one the
// machine has online. The kernel answers a bad cpuset with a bare EINVAL;
// this names the culprits instead.
func checkCPUList(what, list, onlineFile, fallback string) error {
	want, err := parseList(list)
	if err != nil {
		return fmt.Errorf("%s %q: %v: %w", what, list, err, errdefs.ErrInvalidArgument)
	}
	online := fallback
	data, err := os.ReadFile(onlineFile)
	switch {
	case err == nil:
		online = string(data)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", onlineFile, err)
	}
	have, err := parseList(online)
	if err != nil {
		return fmt.Errorf("parse %s %q: %w", onlineFile, online, err)
	}
	if missing := uncovered(want, have); len(missing) > 0 {
		return fmt.Errorf("%s %q: %s %s (this machine has %s): %w",
			what, list, formatList(missing), notThere(missing), strings.TrimSpace(online), errdefs.ErrInvalidArgument)
	}
	return nil
}

func notThere(spans []span) string {
	if len(spans) == 1 && spans[0].lo == spans[0].hi {
		return "does not exist or is not online"
	}
	return "do not exist or are not online"
}
