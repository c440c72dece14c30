package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/seccomp"
)

// The init's configuration travels in a small hand-written binary form, not
// JSON: encoding/json builds its reflection caches for the spec types on
// first use, about a millisecond in a fresh process, and the init is always
// a fresh process on the critical path of every container start.

type wireWriter struct{ b []byte }

func (w *wireWriter) u64(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wireWriter) i64(v int64)  { w.b = binary.AppendVarint(w.b, v) }
func (w *wireWriter) bool(v bool) {
	if v {
		w.u64(1)
	} else {
		w.u64(0)
	}
}
func (w *wireWriter) str(s string) { w.u64(uint64(len(s))); w.b = append(w.b, s...) }
func (w *wireWriter) bytes(p []byte) {
	w.u64(uint64(len(p)))
	w.b = append(w.b, p...)
}
func (w *wireWriter) strs(ss []string) {
	w.u64(uint64(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}
func (w *wireWriter) strMap(m map[string]string) {
	w.u64(uint64(len(m)))
	for k, v := range m {
		w.str(k)
		w.str(v)
	}
}

type wireReader struct {
	b   []byte
	err error
}

var errShortWire = errors.New("truncated init config")

func (r *wireReader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortWire
		return 0
	}
	r.b = r.b[n:]
	return v
}
func (r *wireReader) i64() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortWire
		return 0
	}
	r.b = r.b[n:]
	return v
}
func (r *wireReader) int() int   { return int(r.i64()) }
func (r *wireReader) bool() bool { return r.u64() != 0 }
func (r *wireReader) count() int {
	n := r.u64()
	if n > uint64(len(r.b)) { // every element takes at least one byte
		r.err = errShortWire
		return 0
	}
	return int(n)
}
func (r *wireReader) bytes() []byte {
	n := r.count()
	if r.err != nil {
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}
func (r *wireReader) str() string { return string(r.bytes()) }
func (r *wireReader) strs() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}
func (r *wireReader) strMap() map[string]string {
	n := r.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k := r.str()
		m[k] = r.str()
	}
	return m
}

func (w *wireWriter) optU32(p *uint32) {
	w.bool(p != nil)
	if p != nil {
		w.u64(uint64(*p))
	}
}
func (r *wireReader) optU32() *uint32 {
	if !r.bool() {
		return nil
	}
	v := uint32(r.u64())
	return &v
}

func (w *wireWriter) hooks(hs []specs.Hook) {
	w.u64(uint64(len(hs)))
	for _, h := range hs {
		w.str(h.Path)
		w.strs(h.Args)
		w.strs(h.Env)
		w.bool(h.Timeout != nil)
		if h.Timeout != nil {
			w.i64(int64(*h.Timeout))
		}
	}
}
func (r *wireReader) hooks() []specs.Hook {
	n := r.count()
	if n == 0 {
		return nil
	}
	hs := make([]specs.Hook, n)
	for i := range hs {
		hs[i].Path = r.str()
		hs[i].Args = r.strs()
		hs[i].Env = r.strs()
		if r.bool() {
			t := r.int()
			hs[i].Timeout = &t
		}
	}
	return hs
}

func (w *wireWriter) attrs(a procAttrs) {
	w.bool(a.hasIOPrio)
	w.u64(a.ioprio)
	w.bool(a.hasPersona)
	w.u64(a.persona)
	w.bool(a.hasSched)
	s := a.sched
	for _, v := range []uint64{uint64(s.size), uint64(s.policy), s.flags, uint64(uint32(s.nice)), uint64(s.priority), s.runtime, s.deadline, s.period} {
		w.u64(v)
	}
}

func (r *wireReader) attrs() procAttrs {
	var a procAttrs
	a.hasIOPrio = r.bool()
	a.ioprio = r.u64()
	a.hasPersona = r.bool()
	a.persona = r.u64()
	a.hasSched = r.bool()
	s := &a.sched
	s.size, s.policy, s.flags = uint32(r.u64()), uint32(r.u64()), r.u64()
	s.nice, s.priority = int32(uint32(r.u64())), uint32(r.u64())
	s.runtime, s.deadline, s.period = r.u64(), r.u64(), r.u64()
	return a
}

func (w *wireWriter) process(p *specs.Process) {
	w.bool(p.Terminal)
	w.bool(p.ConsoleSize != nil)
	if p.ConsoleSize != nil {
		w.u64(uint64(p.ConsoleSize.Height))
		w.u64(uint64(p.ConsoleSize.Width))
	}
	w.u64(uint64(p.User.UID))
	w.u64(uint64(p.User.GID))
	w.optU32(p.User.Umask)
	w.u64(uint64(len(p.User.AdditionalGids)))
	for _, g := range p.User.AdditionalGids {
		w.u64(uint64(g))
	}
	w.strs(p.Args)
	w.strs(p.Env)
	w.str(p.Cwd)
	c := p.Capabilities
	w.bool(c != nil)
	if c != nil {
		w.strs(c.Bounding)
		w.strs(c.Effective)
		w.strs(c.Inheritable)
		w.strs(c.Permitted)
		w.strs(c.Ambient)
	}
	w.u64(uint64(len(p.Rlimits)))
	for _, rl := range p.Rlimits {
		w.str(rl.Type)
		w.u64(rl.Hard)
		w.u64(rl.Soft)
	}
	w.bool(p.NoNewPrivileges)
}
func (r *wireReader) process() *specs.Process {
	p := &specs.Process{}
	p.Terminal = r.bool()
	if r.bool() {
		p.ConsoleSize = &specs.Box{Height: uint(r.u64()), Width: uint(r.u64())}
	}
	p.User.UID = uint32(r.u64())
	p.User.GID = uint32(r.u64())
	p.User.Umask = r.optU32()
	if n := r.count(); n > 0 {
		p.User.AdditionalGids = make([]uint32, n)
		for i := range p.User.AdditionalGids {
			p.User.AdditionalGids[i] = uint32(r.u64())
		}
	}
	p.Args = r.strs()
	p.Env = r.strs()
	p.Cwd = r.str()
	if r.bool() {
		p.Capabilities = &specs.LinuxCapabilities{
			Bounding: r.strs(), Effective: r.strs(), Inheritable: r.strs(), Permitted: r.strs(), Ambient: r.strs(),
		}
	}
	if n := r.count(); n > 0 {
		p.Rlimits = make([]specs.POSIXRlimit, n)
		for i := range p.Rlimits {
			p.Rlimits[i] = specs.POSIXRlimit{Type: r.str(), Hard: r.u64(), Soft: r.u64()}
		}
	}
	p.NoNewPrivileges = r.bool()
	return p
}

func (w *wireWriter) filter(p *seccomp.Program) {
	w.bool(p != nil)
	if p == nil {
		return
	}
	w.u64(uint64(p.Flags))
	w.u64(uint64(len(p.Filter)))
	for _, f := range p.Filter {
		w.u64(uint64(f.Code))
		w.u64(uint64(f.Jt))
		w.u64(uint64(f.Jf))
		w.u64(uint64(f.K))
	}
}
func (r *wireReader) filter() *seccomp.Program {
	if !r.bool() {
		return nil
	}
	p := &seccomp.Program{Flags: uint(r.u64())}
	n := r.count()
	p.Filter = make([]unix.SockFilter, n)
	for i := range p.Filter {
		p.Filter[i] = unix.SockFilter{Code: uint16(r.u64()), Jt: uint8(r.u64()), Jf: uint8(r.u64()), K: uint32(r.u64())}
	}
	return p
}

func (c *initConfig) encode() []byte {
	w := &wireWriter{b: make([]byte, 0, 4096)}
	w.str(c.Mode)
	w.str(c.ID)
	w.str(c.Rootfs)
	w.i64(int64(c.FifoFd))
	w.i64(int64(c.ConsoleFd))
	w.i64(int64(c.PreserveFDs))
	for _, b := range []bool{c.NewCgroupNS, c.LateCgroupNS, c.NewMountNS, c.UserNS, c.Trace, c.ReadonlyRoot, c.RuntimeHooks} {
		w.bool(b)
	}
	w.strMap(c.CgroupPaths)
	w.i64(c.PidsLimit)
	w.str(c.PidsFile)
	w.str(c.Hostname)
	w.str(c.Domainname)
	w.u64(uint64(len(c.Mounts)))
	for _, m := range c.Mounts {
		w.str(m.Destination)
		w.str(m.Type)
		w.str(m.Source)
		w.strs(m.Options)
	}
	w.u64(uint64(len(c.Devices)))
	for _, d := range c.Devices {
		w.str(d.Path)
		w.str(d.Type)
		w.i64(d.Major)
		w.i64(d.Minor)
		w.bool(d.FileMode != nil)
		if d.FileMode != nil {
			w.u64(uint64(*d.FileMode))
		}
		w.optU32(d.UID)
		w.optU32(d.GID)
	}
	w.strs(c.MaskedPaths)
	w.strs(c.ReadonlyPaths)
	w.str(c.RootfsPropagation)
	w.strMap(c.Sysctl)
	w.hooks(c.CreateContainerHooks)
	w.hooks(c.StartContainerHooks)
	w.bytes(c.StateJSON)
	w.process(c.Process)
	w.attrs(c.Attrs)
	w.filter(c.Seccomp)
	return w.b
}

func decodeInitConfig(b []byte) (*initConfig, error) {
	r := &wireReader{b: b}
	c := &initConfig{}
	c.Mode = r.str()
	c.ID = r.str()
	c.Rootfs = r.str()
	c.FifoFd = r.int()
	c.ConsoleFd = r.int()
	c.PreserveFDs = r.int()
	for _, b := range []*bool{&c.NewCgroupNS, &c.LateCgroupNS, &c.NewMountNS, &c.UserNS, &c.Trace, &c.ReadonlyRoot, &c.RuntimeHooks} {
		*b = r.bool()
	}
	c.CgroupPaths = r.strMap()
	c.PidsLimit = r.i64()
	c.PidsFile = r.str()
	c.Hostname = r.str()
	c.Domainname = r.str()
	if n := r.count(); n > 0 {
		c.Mounts = make([]specs.Mount, n)
		for i := range c.Mounts {
			c.Mounts[i] = specs.Mount{Destination: r.str(), Type: r.str(), Source: r.str(), Options: r.strs()}
		}
	}
	if n := r.count(); n > 0 {
		c.Devices = make([]specs.LinuxDevice, n)
		for i := range c.Devices {
			d := &c.Devices[i]
			d.Path, d.Type, d.Major, d.Minor = r.str(), r.str(), r.i64(), r.i64()
			if r.bool() {
				m := os.FileMode(r.u64())
				d.FileMode = &m
			}
			d.UID, d.GID = r.optU32(), r.optU32()
		}
	}
	c.MaskedPaths = r.strs()
	c.ReadonlyPaths = r.strs()
	c.RootfsPropagation = r.str()
	c.Sysctl = r.strMap()
	c.CreateContainerHooks = r.hooks()
	c.StartContainerHooks = r.hooks()
	c.StateJSON = r.bytes()
	c.Process = r.process()
	c.Attrs = r.attrs()
	c.Seccomp = r.filter()
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("init config has %d trailing bytes", len(r.b))
	}
	return c, nil
}
