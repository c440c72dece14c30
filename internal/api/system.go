package api

import (
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"
)

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("API-Version", MaxVersion)
	h.Set("OSType", "linux")
	h.Set("Docker-Experimental", "false")
	// The classic builder only: CLIs that ask the daemon (docker 20.10)
	// then build with it without DOCKER_BUILDKIT=0.
	h.Set("Builder-Version", "1")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	_, _ = w.Write([]byte("OK"))
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "berth"},
		Version:       s.info.Version,
		APIVersion:    MaxVersion,
		MinAPIVersion: MinVersion,
		GitCommit:     s.info.GitCommit,
		GoVersion:     goruntime.Version(),
		Os:            goruntime.GOOS,
		Arch:          goruntime.GOARCH,
		KernelVersion: kernelVersion(),
	}
	v.Components = []system.ComponentVersion{{
		Name: "Engine", Version: v.Version,
		Details: map[string]string{
			"ApiVersion": v.APIVersion, "MinAPIVersion": v.MinAPIVersion, "GitCommit": v.GitCommit,
			"GoVersion": v.GoVersion, "Os": v.Os, "Arch": v.Arch, "KernelVersion": v.KernelVersion,
		},
	}}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) systemInfo(w http.ResponseWriter, r *http.Request) {
	running, paused, stopped := s.eng.Counts()
	imgs, _ := s.images.List(r.Context())
	hostname, _ := os.Hostname()
	var si unix.Sysinfo_t
	_ = unix.Sysinfo(&si)
	cgv := "1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgv = "2"
	}
	rt := s.info.DefaultRuntime
	if rt == "" {
		rt = "berth"
	}
	info := system.Info{
		ID:                 machineID(),
		Containers:         running + paused + stopped,
		ContainersRunning:  running,
		ContainersPaused:   paused,
		ContainersStopped:  stopped,
		Images:             len(imgs),
		Driver:             "overlayfs",
		DriverStatus:       [][2]string{},
		Plugins:            system.PluginsInfo{Volume: []string{"local"}, Network: []string{"bridge", "host", "null"}, Log: []string{"json-file"}},
		MemoryLimit:        true,
		SwapLimit:          true,
		CPUCfsPeriod:       true,
		CPUCfsQuota:        true,
		CPUShares:          true,
		CPUSet:             true,
		PidsLimit:          true,
		NGoroutines:        goruntime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      cgv,
		KernelVersion:      kernelVersion(),
		OperatingSystem:    osName(),
		OSType:             "linux",
		Architecture:       unameMachine(),
		IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig: &registry.ServiceConfig{
			IndexConfigs: map[string]*registry.IndexInfo{},
			Mirrors:      append([]string{}, s.info.Mirrors...),
		},
		NCPU:               goruntime.NumCPU(),
		MemTotal:           int64(si.Totalram) * int64(si.Unit),
		DockerRootDir:      s.info.Root,
		Name:               hostname,
		Labels:             []string{},
		ServerVersion:      s.info.Version,
		Runtimes:           map[string]system.RuntimeWithStatus{rt: {}},
		DefaultRuntime:     rt,
		LiveRestoreEnabled: true,
		Isolation:          "",
		// What docker says: no swarm, its init binary's name (berth's own
		// reaper answers to it, `--init`).
		Swarm:           swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		InitBinary:      "docker-init",
		SecurityOptions: []string{"name=seccomp,profile=builtin", "name=cgroupns"},
		CDISpecDirs:     []string{},
		Warnings:        []string{},
	}
	writeJSON(w, http.StatusOK, info)
}

func machineID() string {
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func unameMachine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return goruntime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func osName() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
