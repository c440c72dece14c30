package runconfig

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
)

// Extra are the `run`/`create` flags for health checks, logging, limits and
// namespaces: docker's syntax, checked here as docker's CLI checks it.
type Extra struct {
	HealthCmd           string
	HealthInterval      time.Duration
	HealthTimeout       time.Duration
	HealthStartPeriod   time.Duration
	HealthStartInterval time.Duration
	HealthRetries       int
	NoHealthcheck       bool

	LogDriver string
	LogOpts   []string

	Ulimits           []string
	Sysctls           []string
	OomScoreAdj       int
	OomKillDisable    bool
	CPUShares         int64
	CPUQuota          int64
	CPUPeriod         int64
	CpusetCpus        string
	CpusetMems        string
	MemorySwap        string
	MemoryReservation string
	ShmSize           string
	GroupAdd          []string
	SecurityOpt       []string
	StopTimeout       int
	stopTimeoutSet    bool
	Devices           []string
	DeviceCgroupRules []string
	// Block I/O: --blkio-weight, --blkio-weight-device DEV:W and the
	// --device-{read,write}-{bps,iops} DEV:RATE throttles.
	BlkioWeight       uint16
	BlkioWeightDevice []string
	DeviceReadBps     []string
	DeviceWriteBps    []string
	DeviceReadIOps    []string
	DeviceWriteIOps   []string
	CgroupParent      string
	CgroupnsMode      string
	MemorySwappiness  int64
	Userns            string
	StorageOpt        []string
	Gpus              string
	Annotations       []string
	LabelFiles        []string
	PidMode           string
	IpcMode           string
	UTSMode           string
	Runtime           string
}

// SetStopTimeout records an explicit --stop-timeout.
func (x *Extra) SetStopTimeout(v int) { x.StopTimeout, x.stopTimeoutSet = v, true }

func (x *Extra) apply(cfg *container.Config, hc *container.HostConfig) error {
	if err := x.labelFiles(cfg); err != nil {
		return err
	}
	hcfg, err := x.healthcheck()
	if err != nil {
		return err
	}
	cfg.Healthcheck = hcfg
	if x.stopTimeoutSet {
		v := x.StopTimeout
		cfg.StopTimeout = &v
	}
	if x.LogDriver != "" || len(x.LogOpts) > 0 {
		opts, err := keyValues(x.LogOpts)
		if err != nil {
			return fmt.Errorf("invalid argument for \"--log-opt\" flag: %w", err)
		}
		hc.LogConfig = container.LogConfig{Type: x.LogDriver, Config: opts}
	}
	for _, u := range x.Ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return fmt.Errorf("invalid argument %q for \"--ulimit\" flag: %w", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	if len(x.Sysctls) > 0 {
		hc.Sysctls = map[string]string{}
		for _, s := range x.Sysctls {
			k, v, ok := strings.Cut(s, "=")
			if !ok || k == "" {
				return fmt.Errorf("invalid argument %q for \"--sysctl\" flag: sysctl '%s' is not allowed", s, s)
			}
			hc.Sysctls[k] = v
		}
	}
	hc.OomScoreAdj = x.OomScoreAdj
	if x.OomKillDisable {
		v := true
		hc.OomKillDisable = &v
	}
	hc.CPUShares, hc.CPUQuota, hc.CPUPeriod = x.CPUShares, x.CPUQuota, x.CPUPeriod
	hc.CpusetCpus, hc.CpusetMems = x.CpusetCpus, x.CpusetMems
	for _, s := range []struct {
		flag, v string
		dst     *int64
		minusOK bool
	}{
		{"--memory-swap", x.MemorySwap, &hc.MemorySwap, true},
		{"--memory-reservation", x.MemoryReservation, &hc.MemoryReservation, false},
		{"--shm-size", x.ShmSize, &hc.ShmSize, false},
	} {
		if s.v == "" {
			continue
		}
		if s.minusOK && s.v == "-1" {
			*s.dst = -1
			continue
		}
		n, err := units.RAMInBytes(s.v)
		if err != nil {
			return fmt.Errorf("invalid argument %q for \"%s\" flag: %w", s.v, s.flag, err)
		}
		*s.dst = n
	}
	for _, d := range x.Devices {
		m, err := deviceMapping(d)
		if err != nil {
			return err
		}
		hc.Devices = append(hc.Devices, m)
	}
	hc.DeviceCgroupRules = x.DeviceCgroupRules
	if err := x.blkio(hc); err != nil {
		return err
	}
	hc.CgroupParent = x.CgroupParent
	hc.CgroupnsMode = container.CgroupnsMode(x.CgroupnsMode)
	if x.MemorySwappiness != -1 {
		if x.MemorySwappiness < 0 || x.MemorySwappiness > 100 {
			return fmt.Errorf("invalid value: %v. Valid memory swappiness range is 0-100", x.MemorySwappiness)
		}
		v := x.MemorySwappiness
		hc.MemorySwappiness = &v
	}
	hc.UsernsMode = container.UsernsMode(x.Userns)
	if len(x.StorageOpt) > 0 {
		hc.StorageOpt = map[string]string{}
		for _, s := range x.StorageOpt {
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return fmt.Errorf("invalid storage option %q", s)
			}
			hc.StorageOpt[k] = v
		}
	}
	if x.Gpus != "" {
		hc.DeviceRequests = []container.DeviceRequest{{Driver: "", Count: -1, Capabilities: [][]string{{"gpu"}}}}
	}
	if len(x.Annotations) > 0 {
		if hc.Annotations, err = keyValues(x.Annotations); err != nil {
			return fmt.Errorf("invalid argument for \"--annotation\" flag: %w", err)
		}
	}
	hc.GroupAdd = x.GroupAdd
	hc.SecurityOpt = x.SecurityOpt
	hc.PidMode = container.PidMode(x.PidMode)
	hc.IpcMode = container.IpcMode(x.IpcMode)
	hc.UTSMode = container.UTSMode(x.UTSMode)
	if hc.UTSMode.IsHost() && cfg.Hostname != "" {
		return fmt.Errorf("conflicting options: hostname and the UTS mode")
	}
	hc.Runtime = x.Runtime
	return nil
}

// healthcheck is docker's: --health-cmd becomes CMD-SHELL, --no-healthcheck
// NONE; nil when no flag was given (the image's check applies).
func (x *Extra) healthcheck() (*container.HealthConfig, error) {
	given := x.HealthCmd != "" || x.HealthInterval != 0 || x.HealthTimeout != 0 ||
		x.HealthStartPeriod != 0 || x.HealthStartInterval != 0 || x.HealthRetries != 0
	if x.NoHealthcheck {
		if given {
			return nil, fmt.Errorf("--no-healthcheck conflicts with --health-* options")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !given {
		return nil, nil
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--health-interval", x.HealthInterval}, {"--health-timeout", x.HealthTimeout},
		{"--health-start-period", x.HealthStartPeriod}, {"--health-start-interval", x.HealthStartInterval}} {
		if d.v < 0 {
			return nil, fmt.Errorf("%s cannot be negative", d.flag)
		}
	}
	if x.HealthRetries < 0 {
		return nil, fmt.Errorf("--health-retries cannot be negative")
	}
	h := &container.HealthConfig{Interval: x.HealthInterval, Timeout: x.HealthTimeout,
		StartPeriod: x.HealthStartPeriod, StartInterval: x.HealthStartInterval, Retries: x.HealthRetries}
	if x.HealthCmd != "" {
		h.Test = []string{"CMD-SHELL", x.HealthCmd}
	}
	return h, nil
}

// deviceMapping is docker's --device HOST[:CONTAINER][:PERMISSIONS].
func deviceMapping(s string) (container.DeviceMapping, error) {
	parts := strings.Split(s, ":")
	m := container.DeviceMapping{PathOnHost: parts[0], CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
		m.PathInContainer = parts[0]
	case 2:
		if strings.Trim(parts[1], "rwm") == "" && parts[1] != "" {
			m.PathInContainer, m.CgroupPermissions = parts[0], parts[1]
		} else {
			m.PathInContainer = parts[1]
		}
	case 3:
		m.PathInContainer, m.CgroupPermissions = parts[1], parts[2]
	default:
		return m, fmt.Errorf("invalid argument %q for \"--device\" flag: invalid device specification: %s", s, s)
	}
	if !strings.HasPrefix(m.PathInContainer, "/") || strings.Trim(m.CgroupPermissions, "rwm") != "" || m.CgroupPermissions == "" {
		return m, fmt.Errorf("invalid argument %q for \"--device\" flag: invalid device specification: %s", s, s)
	}
	return m, nil
}

// blkio fills the block I/O weights and throttles of hc.
func (x *Extra) blkio(hc *container.HostConfig) error {
	hc.BlkioWeight = x.BlkioWeight
	if x.BlkioWeight != 0 && (x.BlkioWeight < 10 || x.BlkioWeight > 1000) {
		return fmt.Errorf("invalid argument %q for \"--blkio-weight\" flag: range is 10 to 1000", strconv.Itoa(int(x.BlkioWeight)))
	}
	for _, s := range x.BlkioWeightDevice {
		dev, w, ok := strings.Cut(s, ":")
		n, err := strconv.ParseUint(w, 10, 16)
		if !ok || !strings.HasPrefix(dev, "/dev/") || err != nil || n < 10 || n > 1000 {
			return fmt.Errorf("invalid argument %q for \"--blkio-weight-device\" flag: bad format: %s", s, s)
		}
		hc.BlkioWeightDevice = append(hc.BlkioWeightDevice, &blkiodev.WeightDevice{Path: dev, Weight: uint16(n)})
	}
	for _, t := range []struct {
		flag  string
		in    []string
		out   *[]*blkiodev.ThrottleDevice
		bytes bool
	}{
		{"--device-read-bps", x.DeviceReadBps, &hc.BlkioDeviceReadBps, true},
		{"--device-write-bps", x.DeviceWriteBps, &hc.BlkioDeviceWriteBps, true},
		{"--device-read-iops", x.DeviceReadIOps, &hc.BlkioDeviceReadIOps, false},
		{"--device-write-iops", x.DeviceWriteIOps, &hc.BlkioDeviceWriteIOps, false},
	} {
		for _, s := range t.in {
			dev, rate, ok := strings.Cut(s, ":")
			var n uint64
			var err error
			if t.bytes {
				var b int64
				b, err = units.RAMInBytes(rate)
				n = uint64(b)
			} else {
				n, err = strconv.ParseUint(rate, 10, 64)
			}
			if !ok || !strings.HasPrefix(dev, "/dev/") || err != nil {
				return fmt.Errorf("invalid argument %q for \"%s\" flag: bad format: %s", s, t.flag, s)
			}
			*t.out = append(*t.out, &blkiodev.ThrottleDevice{Path: dev, Rate: n})
		}
	}
	return nil
}

// labelFiles adds --label-file lines (key=value; # comments) to the labels;
// --label flags win.
func (x *Extra) labelFiles(cfg *container.Config) error {
	for _, f := range x.LabelFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("open label file: %w", err)
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			if _, set := cfg.Labels[k]; !set {
				cfg.Labels[k] = v
			}
		}
	}
	return nil
}
