package command

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/system"

	"github.com/berth-dev/berth/internal/cli/format"
)

// printInfo lays out `info` as docker's CLI does: the client, then the
// server's figures in docker's order and words; warnings go to warn.
func printInfo(out, warn io.Writer, clientVersion string, i system.Info) {
	p := func(format string, a ...any) { fmt.Fprintf(out, format, a...) }
	p("Client:\n Version:    %s\n Context:    default\n Debug Mode: false\n\n", clientVersion)
	p("Server:\n Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n Images: %d\n",
		i.Containers, i.ContainersRunning, i.ContainersPaused, i.ContainersStopped, i.Images)
	p(" Server Version: %s\n Storage Driver: %s\n", i.ServerVersion, i.Driver)
	for _, kv := range i.DriverStatus {
		p("  %s: %s\n", kv[0], kv[1])
	}
	p(" Logging Driver: %s\n Cgroup Driver: %s\n Cgroup Version: %s\n", i.LoggingDriver, i.CgroupDriver, i.CgroupVersion)
	p(" Plugins:\n  Volume: %s\n  Network: %s\n  Log: %s\n",
		strings.Join(i.Plugins.Volume, " "), strings.Join(i.Plugins.Network, " "), strings.Join(i.Plugins.Log, " "))
	swarm := string(i.Swarm.LocalNodeState)
	if swarm == "" {
		swarm = "inactive"
	}
	p(" Swarm: %s\n", swarm)
	if len(i.Runtimes) > 0 {
		names := make([]string, 0, len(i.Runtimes))
		for n := range i.Runtimes {
			names = append(names, n)
		}
		sort.Strings(names)
		p(" Runtimes: %s\n Default Runtime: %s\n", strings.Join(names, " "), i.DefaultRuntime)
	}
	if i.OSType == "linux" {
		p(" Init Binary: %s\n", i.InitBinary)
		for _, v := range []struct {
			name string
			id   string
		}{{"containerd", i.ContainerdCommit.ID}, {"runc", i.RuncCommit.ID}, {"init", i.InitCommit.ID}} {
			p(" %s version: %s\n", v.name, v.id)
		}
	}
	if len(i.SecurityOptions) > 0 {
		p(" Security Options:\n")
		for _, o := range i.SecurityOptions {
			// "name=seccomp,profile=builtin" → "seccomp" and "Profile: builtin".
			var name string
			var rest []string
			for _, kv := range strings.Split(o, ",") {
				k, v, _ := strings.Cut(kv, "=")
				if k == "name" {
					name = v
				} else if v != "" {
					rest = append(rest, strings.ToUpper(k[:1])+k[1:]+": "+v)
				}
			}
			p("  %s\n", name)
			for _, r := range rest {
				p("   %s\n", r)
			}
		}
	}
	p(" Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n Name: %s\n ID: %s\n Docker Root Dir: %s\n",
		i.KernelVersion, i.OperatingSystem, i.OSType, i.Architecture, i.NCPU, format.BinarySize(i.MemTotal), i.Name, i.ID, i.DockerRootDir)
	p(" Debug Mode: %t\n Experimental: %t\n", i.Debug, i.ExperimentalBuild)
	if len(i.Labels) > 0 {
		p(" Labels:\n")
		for _, l := range i.Labels {
			p("  %s\n", l)
		}
	}
	if rc := i.RegistryConfig; rc != nil {
		if len(rc.InsecureRegistryCIDRs) > 0 || hasInsecureIndex(rc.IndexConfigs) {
			p(" Insecure Registries:\n")
			var names []string
			for name, ix := range rc.IndexConfigs {
				if ix != nil && !ix.Secure {
					names = append(names, name)
				}
			}
			sort.Strings(names)
			for _, n := range names {
				p("  %s\n", n)
			}
			for _, c := range rc.InsecureRegistryCIDRs {
				p("  %s\n", c.String())
			}
		}
		if len(rc.Mirrors) > 0 {
			p(" Registry Mirrors:\n")
			for _, m := range rc.Mirrors {
				p("  %s\n", m)
			}
		}
	}
	p(" Live Restore Enabled: %t\n\n", i.LiveRestoreEnabled)
	for _, w := range i.Warnings {
		fmt.Fprintln(warn, w)
	}
}

func hasInsecureIndex(ix map[string]*registry.IndexInfo) bool {
	for _, i := range ix {
		if i != nil && !i.Secure {
			return true
		}
	}
	return false
}
