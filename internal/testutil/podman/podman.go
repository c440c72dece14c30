// Package podman writes the private configuration that lets benchmarks run
// Debian's podman beside berth without touching a system podman: its own
// containers.conf (ulimits this host allows without CAP_SYS_RESOURCE,
// cgroupfs, no events log), storage.conf, registries.conf (one insecure
// loopback registry, no unqualified search) and auth file.
package podman

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteConfig writes the configuration files under dir, with storage in
// graphroot and runroot and registry (host:port) marked insecure, and
// returns the environment that points podman at them.
func WriteConfig(dir, graphroot, runroot, registry string) ([]string, error) {
	files := map[string]string{
		"containers.conf": fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "%[1]s/tmp"
[network]
network_config_dir = "%[1]s/networks"
`, dir),
		"storage.conf":    fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", graphroot, runroot),
		"registries.conf": fmt.Sprintf("unqualified-search-registries = []\n[[registry]]\nlocation = %q\ninsecure = true\n", registry),
		"auth.json":       "{}\n",
	}
	for _, sub := range []string{"tmp", "networks"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	return []string{
		"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"),
		"TMPDIR=" + filepath.Join(dir, "tmp"),
	}, nil
}
