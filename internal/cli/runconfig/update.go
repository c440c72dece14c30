package runconfig

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
)

// UpdateOptions are `update`'s flags as typed; empty means "not given".
type UpdateOptions struct {
	Memory, MemorySwap, MemoryReservation string
	CPUs                                  string
	CPUShares                             int64
	PidsLimit                             int64 // 0: not given
	Restart                               string
}

// Update turns update flags into the resources and restart policy to send
// (zero fields are left as they are by the daemon).
func Update(o UpdateOptions) (container.Resources, container.RestartPolicy, error) {
	var r container.Resources
	var err error
	for _, f := range []struct {
		val, flag string
		dst       *int64
		swap      bool
	}{
		{o.Memory, `"-m, --memory"`, &r.Memory, false},
		{o.MemorySwap, `"--memory-swap"`, &r.MemorySwap, true},
		{o.MemoryReservation, `"--memory-reservation"`, &r.MemoryReservation, false},
	} {
		if f.val == "" {
			continue
		}
		if f.swap && f.val == "-1" {
			*f.dst = -1
			continue
		}
		if *f.dst, err = units.RAMInBytes(f.val); err != nil {
			return r, container.RestartPolicy{}, fmt.Errorf("invalid argument %q for %s flag: %w", f.val, f.flag, err)
		}
	}
	if o.CPUs != "" {
		if r.NanoCPUs, err = nanoCPUs(o.CPUs); err != nil {
			return r, container.RestartPolicy{}, fmt.Errorf("invalid argument %q for \"--cpus\" flag: %w", o.CPUs, err)
		}
	}
	r.CPUShares = o.CPUShares
	if o.PidsLimit != 0 {
		v := o.PidsLimit
		r.PidsLimit = &v
	}
	// The policy's name is the daemon's to check (docker's CLI words it
	// the daemon's way here); only a count must be a number.
	var rp container.RestartPolicy
	if o.Restart != "" {
		name, count, ok := strings.Cut(o.Restart, ":")
		rp.Name = container.RestartPolicyMode(name)
		if ok {
			if rp.MaximumRetryCount, err = strconv.Atoi(count); err != nil {
				return r, rp, fmt.Errorf("invalid restart policy format: maximum retry count must be an integer")
			}
		}
	}
	return r, rp, nil
}
