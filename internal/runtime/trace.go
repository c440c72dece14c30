package runtime

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// TraceEnv, when set to 1, makes the parent and the init print the
// monotonic time of each start-up phase to stderr: the tool for keeping
// container start latency low.
const TraceEnv = "BERTH_TRACE_START"

type phaseTracer struct{ on bool }

func newPhaseTracer(on bool) phaseTracer { return phaseTracer{on: on} }

func (p phaseTracer) mark(who, phase string) {
	if !p.on {
		return
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	fmt.Fprintf(os.Stderr, "%.3fms %-6s %s\n", float64(ts.Nano())/float64(time.Millisecond), who, phase)
}
