package spec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

func rootfs(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:web:/home/web:/bin/sh\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nweb:x:1001:\nextra:x:2000:web\n"), 0o644)
	return dir
}

func TestBuildDefaults(t *testing.T) {
	s, err := Build(Options{Rootfs: rootfs(t), Hostname: "abc", Args: []string{"sh"}, User: "web", Tty: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.User.UID != 1000 || s.Process.User.GID != 1001 || !slices.Contains(s.Process.User.AdditionalGids, 2000) {
		t.Errorf("user: %+v", s.Process.User)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, DefaultCapabilities) {
		t.Errorf("caps: %v", s.Process.Capabilities.Bounding)
	}
	for _, want := range []string{"HOSTNAME=abc", "TERM=xterm", "HOME=/home/web"} {
		if !slices.Contains(s.Process.Env, want) {
			t.Errorf("env lacks %s: %v", want, s.Process.Env)
		}
	}
	if s.Linux.Seccomp == nil || len(s.Linux.MaskedPaths) == 0 {
		t.Error("no seccomp profile or masked paths")
	}
	if !slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == "network" }) {
		t.Error("default network mode should get a private netns")
	}
}

func TestBuildPrivilegedAndCaps(t *testing.T) {
	s, err := Build(Options{Rootfs: rootfs(t), Args: []string{"sh"}, Privileged: true, NetworkMode: NetworkHost})
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 || len(s.Process.Capabilities.Bounding) <= len(DefaultCapabilities) {
		t.Error("privileged kept confinement")
	}
	s, err = Build(Options{Rootfs: rootfs(t), Args: []string{"sh"}, CapDrop: []string{"ALL"}, CapAdd: []string{"net_admin"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_ADMIN"}) {
		t.Errorf("drop ALL + add net_admin: %v", s.Process.Capabilities.Bounding)
	}
	for _, o := range []Options{
		{Rootfs: rootfs(t), Args: []string{"sh"}, CapAdd: []string{"NOPE"}},
		{Rootfs: rootfs(t), Args: []string{"sh"}, User: "ghost"},
		{Rootfs: rootfs(t), Args: []string{"sh"}, Cwd: "rel"},
		{Rootfs: rootfs(t)},
		{Rootfs: rootfs(t), Args: []string{"sh"}, Tmpfs: map[string]string{"rel": ""}},
	} {
		if _, err := Build(o); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: want InvalidArgument, got %v", o, err)
		}
	}
}

// TestMountOrder: the container's mounts come after the defaults, parents
// before children whatever kind they are (docker's sort), and replace a
// default at the same place.
func TestMountOrder(t *testing.T) {
	s, err := Build(Options{
		Rootfs: rootfs(t), Args: []string{"sh"},
		Tmpfs:          map[string]string{"/etc/x/t": "", "/dev/shm": "size=1m"},
		ResolvConfPath: "/r", HostsPath: "/h", HostnamePath: "/n",
		Mounts: []specs.Mount{
			{Destination: "/etc/x", Type: "bind", Source: "/v1"},
			{Destination: "/etc", Type: "bind", Source: "/v0"},
			{Destination: "/etc/hosts", Type: "bind", Source: "/user-hosts"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range s.Mounts {
		got = append(got, m.Destination+"="+m.Source)
	}
	want := []string{"/proc=proc", "/dev=tmpfs", "/dev/pts=devpts", "/sys=sysfs", "/sys/fs/cgroup=cgroup", "/dev/mqueue=mqueue",
		"/etc=/v0", "/dev/shm=tmpfs", "/etc/resolv.conf=/r", "/etc/hostname=/n", "/etc/x=/v1", "/etc/hosts=/user-hosts", "/etc/x/t=tmpfs"}
	if !slices.Equal(got, want) {
		t.Fatalf("mounts:\n%v\nwant\n%v", got, want)
	}
}
