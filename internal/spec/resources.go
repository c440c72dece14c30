package spec

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Resources returns the cgroup limits of opts (memory, CPU, pids) as Build
// puts them in the spec, without the device rules: what `docker update`
// writes to a running container's cgroup.
func Resources(opts Options) *specs.LinuxResources {
	r := resources(opts)
	r.Devices = nil
	return r
}
