package runtime

import (
	"fmt"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// procAttrs are the process attributes of runtime-spec 1.1 and 1.2 set
// right before the process's identity changes (while the init still has
// CAP_SYS_NICE): its I/O priority (ioprio_set), scheduling policy
// (sched_setattr) and execution domain (personality). Checked and encoded
// by the parent; applied by the direct child (raw system calls) or the
// exec'd init (apply).
type procAttrs struct {
	ioprio     uint64 // IOPRIO_PRIO_VALUE(class, level)
	hasIOPrio  bool
	sched      schedAttr
	hasSched   bool
	persona    uint64
	hasPersona bool
}

// schedAttr is the kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0).
type schedAttr struct {
	size     uint32
	policy   uint32
	flags    uint64
	nice     int32
	priority uint32
	runtime  uint64
	deadline uint64
	period   uint64
}

const ioprioClassShift = 13

var ioprioClasses = map[specs.IOPriorityClass]uint64{
	specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3,
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3,
	specs.SchedISO: 4, specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10,
	specs.SchedFlagUtilClampMin: 0x20, specs.SchedFlagUtilClampMax: 0x40,
}

var personalityDomains = map[specs.LinuxPersonalityDomain]uint64{
	specs.PerLinux: 0x0000, specs.PerLinux32: 0x0008,
}

// newProcAttrs checks and encodes p's I/O priority and scheduler and the
// container's personality (nil: none).
func newProcAttrs(p *specs.Process, pers *specs.LinuxPersonality) (procAttrs, error) {
	var a procAttrs
	if io := p.IOPriority; io != nil {
		class, ok := ioprioClasses[io.Class]
		if !ok {
			return a, invalid("process.ioPriority: unknown class %q", io.Class)
		}
		if io.Priority < 0 || io.Priority > 7 {
			return a, invalid("process.ioPriority: priority %d is not between 0 and 7", io.Priority)
		}
		a.ioprio, a.hasIOPrio = class<<ioprioClassShift|uint64(io.Priority), true
	}
	if s := p.Scheduler; s != nil {
		policy, ok := schedPolicies[s.Policy]
		if !ok {
			return a, invalid("process.scheduler: unknown policy %q", s.Policy)
		}
		if s.Nice < -20 || s.Nice > 19 {
			return a, invalid("process.scheduler: nice %d is not between -20 and 19", s.Nice)
		}
		if s.Priority < 0 {
			return a, invalid("process.scheduler: priority %d is negative", s.Priority)
		}
		a.sched = schedAttr{size: uint32(unsafe.Sizeof(schedAttr{})), policy: policy, nice: s.Nice,
			priority: uint32(s.Priority), runtime: s.Runtime, deadline: s.Deadline, period: s.Period}
		for _, f := range s.Flags {
			v, ok := schedFlags[f]
			if !ok {
				return a, invalid("process.scheduler: unknown flag %q", f)
			}
			a.sched.flags |= v
		}
		a.hasSched = true
	}
	if pers != nil {
		d, ok := personalityDomains[pers.Domain]
		if !ok {
			return a, invalid("linux.personality: unknown domain %q", pers.Domain)
		}
		if len(pers.Flags) > 0 {
			return a, invalid("linux.personality: flags %v are not supported", pers.Flags)
		}
		a.persona, a.hasPersona = d, true
	}
	return a, nil
}

// apply sets the attributes on the calling thread (the exec'd init, which
// is single-threaded where it matters: it execs from this thread).
func (a procAttrs) apply() error {
	if a.hasPersona {
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(a.persona), 0, 0); e != 0 {
			return fmt.Errorf("set personality: %w", e)
		}
	}
	if a.hasSched {
		if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETATTR, 0, uintptr(unsafe.Pointer(&a.sched)), 0); e != 0 {
			return fmt.Errorf("set scheduler: %w", e)
		}
	}
	if a.hasIOPrio {
		if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, 1 /* IOPRIO_WHO_PROCESS */, 0, uintptr(a.ioprio)); e != 0 {
			return fmt.Errorf("set I/O priority: %w", e)
		}
	}
	return nil
}
