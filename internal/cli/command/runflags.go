package command

import (
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/cli/runconfig"
)

// extraFlags adds docker's health check, logging, limit and namespace flags
// of `run` and `create`.
func extraFlags(f *pflag.FlagSet, x *runconfig.Extra) {
	f.StringVar(&x.HealthCmd, "health-cmd", "", "Command to run to check health")
	f.DurationVar(&x.HealthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	f.DurationVar(&x.HealthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	f.DurationVar(&x.HealthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	f.DurationVar(&x.HealthStartInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	f.IntVar(&x.HealthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	f.BoolVar(&x.NoHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	f.StringVar(&x.LogDriver, "log-driver", "", "Logging driver for the container")
	f.StringArrayVar(&x.LogOpts, "log-opt", nil, "Log driver options")
	f.StringArrayVar(&x.Ulimits, "ulimit", nil, "Ulimit options")
	f.StringArrayVar(&x.Sysctls, "sysctl", nil, "Sysctl options")
	f.IntVar(&x.OomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
	f.BoolVar(&x.OomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	f.Int64VarP(&x.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&x.CPUQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	f.Int64Var(&x.CPUPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	f.StringVar(&x.CpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.StringVar(&x.CpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	f.StringVar(&x.MemorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	f.StringVar(&x.MemoryReservation, "memory-reservation", "", "Memory soft limit")
	f.StringVar(&x.ShmSize, "shm-size", "", "Size of /dev/shm")
	f.StringArrayVar(&x.GroupAdd, "group-add", nil, "Add additional groups to join")
	f.StringArrayVar(&x.SecurityOpt, "security-opt", nil, "Security Options")
	f.IntVar(&x.StopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	f.StringArrayVar(&x.Devices, "device", nil, "Add a host device to the container")
	f.StringArrayVar(&x.DeviceCgroupRules, "device-cgroup-rule", nil, "Add a rule to the cgroup allowed devices list")
	f.Uint16Var(&x.BlkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	f.StringArrayVar(&x.BlkioWeightDevice, "blkio-weight-device", nil, "Block IO weight (relative device weight)")
	f.StringArrayVar(&x.DeviceReadBps, "device-read-bps", nil, "Limit read rate (bytes per second) from a device")
	f.StringArrayVar(&x.DeviceWriteBps, "device-write-bps", nil, "Limit write rate (bytes per second) to a device")
	f.StringArrayVar(&x.DeviceReadIOps, "device-read-iops", nil, "Limit read rate (IO per second) from a device")
	f.StringArrayVar(&x.DeviceWriteIOps, "device-write-iops", nil, "Limit write rate (IO per second) to a device")
	f.StringVar(&x.CgroupParent, "cgroup-parent", "", "Optional parent cgroup for the container")
	f.StringVar(&x.CgroupnsMode, "cgroupns", "", `Cgroup namespace to use (host|private)`)
	f.Int64Var(&x.MemorySwappiness, "memory-swappiness", -1, "Tune container memory swappiness (0 to 100)")
	f.StringVar(&x.Userns, "userns", "", "User namespace to use")
	f.StringArrayVar(&x.StorageOpt, "storage-opt", nil, "Storage driver options for the container")
	f.StringVar(&x.Gpus, "gpus", "", "GPU devices to add to the container ('all' to pass all GPUs)")
	f.StringArrayVar(&x.Annotations, "annotation", nil, "Add an annotation to the container (passed through to the OCI runtime)")
	f.StringArrayVar(&x.LabelFiles, "label-file", nil, "Read in a line delimited file of labels")
	f.Bool("disable-content-trust", true, "Skip image verification (berth has no content trust: always skipped)")
	f.StringVar(&x.PidMode, "pid", "", "PID namespace to use")
	f.StringVar(&x.IpcMode, "ipc", "", "IPC mode to use")
	f.StringVar(&x.UTSMode, "uts", "", "UTS namespace to use")
	f.StringVar(&x.Runtime, "runtime", "", "Runtime to use for this container")
}
