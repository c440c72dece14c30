package seccomp

import (
	"golang.org/x/sys/unix"
)

// Classic BPF opcodes used by the generated programs.
const (
	opLoad = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	opAnd  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	opJA   = unix.BPF_JMP | unix.BPF_JA
	opJEQ  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJGT  = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	opJGE  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	opRet  = unix.BPF_RET | unix.BPF_K
)

// Offsets into struct seccomp_data. Arguments are 64-bit words; every ABI we
// compile for is little-endian, so the low half comes first.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

func argLowOffset(index uint) uint32  { return offArgs + 8*uint32(index) }
func argHighOffset(index uint) uint32 { return offArgs + 8*uint32(index) + 4 }

// maxCondJump is how far a conditional jump reaches: jt and jf are 8 bits.
const maxCondJump = 255

// label names an emitted instruction by its distance from the end of the
// program, which stays fixed while the builder prepends more code.
type label int

// builder assembles a program back to front. Classic BPF only jumps forward,
// so emitting the tail first means every jump target already exists and its
// distance is known when the jump is written; no fix-up pass is needed.
type builder struct {
	rev  []unix.SockFilter // instructions, last one first
	rets map[uint32]label  // nearest "ret" emitted so far for each action
}

func newBuilder() *builder {
	return &builder{rev: make([]unix.SockFilter, 0, 512), rets: make(map[uint32]label, 8)}
}

func (b *builder) emit(ins unix.SockFilter) label {
	b.rev = append(b.rev, ins)
	return label(len(b.rev) - 1)
}

// distance is the jump offset from the next emitted instruction to target.
func (b *builder) distance(target label) int { return len(b.rev) - 1 - int(target) }

// load emits "A = seccomp_data[offset]; goto next".
func (b *builder) load(offset uint32, next label) label {
	b.fallTo(next)
	return b.emit(unix.SockFilter{Code: opLoad, K: offset})
}

// and emits "A &= mask; goto next".
func (b *builder) and(mask uint32, next label) label {
	b.fallTo(next)
	return b.emit(unix.SockFilter{Code: opAnd, K: mask})
}

// fallTo makes the next emitted instruction fall through to target: it
// usually is the last one emitted, unless jump elided a comparison.
func (b *builder) fallTo(target label) {
	if int(target) == len(b.rev)-1 {
		return
	}
	ins := b.rev[target]
	if ins.Code == opRet {
		b.emit(ins)
		return
	}
	b.emit(unix.SockFilter{Code: opJA, K: uint32(b.distance(target))})
}

// ret returns a label that returns action, sharing one instruction per action
// as long as jumps can reach it.
func (b *builder) ret(action uint32) label {
	if l, ok := b.rets[action]; ok {
		return l
	}
	l := b.emit(unix.SockFilter{Code: opRet, K: action})
	b.rets[action] = l
	return l
}

// reachable returns target, or an equivalent instruction that a conditional
// jump emitted next can reach: a copy of a far "ret" (cheaper than a jump to
// it), or an unconditional jump, whose offset has 32 bits.
func (b *builder) reachable(target label) label {
	if b.distance(target) <= maxCondJump {
		return target
	}
	ins := b.rev[target]
	if ins.Code == opRet {
		l := b.emit(ins)
		b.rets[ins.K] = l
		return l
	}
	return b.emit(unix.SockFilter{Code: opJA, K: uint32(b.distance(target))})
}

// jump emits "if A <op> k goto yes else goto no" and returns its label.
func (b *builder) jump(op uint16, k uint32, yes, no label) label {
	if yes == no {
		return yes
	}
	// Each fix emits one instruction right here, so the other target moves
	// one further away; loop until both fit.
	for b.distance(yes) > maxCondJump || b.distance(no) > maxCondJump {
		if b.distance(yes) > maxCondJump {
			yes = b.reachable(yes)
		} else {
			no = b.reachable(no)
		}
	}
	return b.emit(unix.SockFilter{Code: op, Jt: uint8(b.distance(yes)), Jf: uint8(b.distance(no)), K: k})
}

// program returns the instructions in execution order.
func (b *builder) program() []unix.SockFilter {
	out := make([]unix.SockFilter, len(b.rev))
	for i, ins := range b.rev {
		out[len(out)-1-i] = ins
	}
	return out
}

// searchTree emits a binary search over ranges, which partition the numbers
// the caller has narrowed A (the syscall number) down to, and returns its root.
// A lookup costs log2(len(ranges)) jumps instead of one per syscall named.
func (c *compiler) searchTree(b *builder, a *abi, ranges []numRange) label {
	if len(ranges) == 1 {
		return c.leaf(b, a, &ranges[0])
	}
	mid := len(ranges) / 2
	// Back to front: the right half ends up last, the left half right after
	// the comparison, where falling through costs no jump distance.
	right := c.searchTree(b, a, ranges[mid:])
	left := c.searchTree(b, a, ranges[:mid])
	return b.jump(opJGE, ranges[mid].first, right, left)
}

// leaf emits the decision for one range of syscall numbers.
func (c *compiler) leaf(b *builder, a *abi, r *numRange) label {
	if len(r.rules) == 0 {
		return b.ret(r.action)
	}
	// Conditional rules are tried in profile order; the first whose
	// conditions all hold decides, and r.action is the fallback.
	next := b.ret(r.action)
	for i := len(r.rules) - 1; i >= 0; i-- {
		rule := r.rules[i]
		match := b.ret(rule.action)
		for j := len(rule.conds) - 1; j >= 0; j-- {
			match = c.condition(b, a, rule.conds[j], match, next)
		}
		next = match
	}
	return next
}

// condition emits code that goes to match if the syscall argument satisfies
// cd and to miss otherwise. 64-bit arguments are compared as two 32-bit
// halves, high half first; 32-bit ABIs compare only the low halves, like
// libseccomp.
func (c *compiler) condition(b *builder, a *abi, cd cond, match, miss label) label {
	if cd.negate {
		match, miss = miss, match
	}
	halves := []struct {
		offset uint32
		shift  uint
	}{{argLowOffset(cd.arg), 0}, {argHighOffset(cd.arg), 32}}
	if a.args32 {
		halves = halves[:1]
	}
	if cd.masked {
		// Low half last, so emit it first. A half whose mask is zero always
		// matches: skip it.
		next := match
		for _, h := range halves {
			mask, want := uint32(cd.mask>>h.shift), uint32(cd.value>>h.shift)
			if mask == 0 {
				continue
			}
			next = b.jump(opJEQ, want&mask, next, miss)
			if mask != 0xffffffff {
				next = b.and(mask, next)
			}
			next = b.load(h.offset, next)
		}
		return next
	}
	// A > V is Ah > Vh || (Ah == Vh && Al > Vl); A >= V ends with Al >= Vl.
	lowOp := uint16(opJGT)
	if cd.orEqual {
		lowOp = opJGE
	}
	low := b.jump(lowOp, uint32(cd.value), match, miss)
	low = b.load(argLowOffset(cd.arg), low)
	if a.args32 {
		return low
	}
	hi := uint32(cd.value >> 32)
	equalHigh := b.jump(opJEQ, hi, low, miss)
	high := b.jump(opJGT, hi, match, equalHigh)
	return b.load(argHighOffset(cd.arg), high)
}
