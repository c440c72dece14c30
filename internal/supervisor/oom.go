package supervisor

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupsPathOf reads linux.cgroupsPath from a bundle's config.json, so
// that the exit can tell whether the kernel's OOM killer ended the
// container.
func cgroupsPathOf(bundle string) string {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return ""
	}
	var s struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(data, &s) != nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}

// oomKilled reports an OOM kill in the container's cgroup: oom_kill in
// memory.events (cgroup v2) or memory.oom_control (v1). Read before the
// runtime deletes the cgroup.
func oomKilled(cgroupsPath string) bool {
	if cgroupsPath == "" || !filepath.IsAbs(cgroupsPath) {
		return false
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup", cgroupsPath, "memory.events"),
		filepath.Join("/sys/fs/cgroup/memory", cgroupsPath, "memory.oom_control"),
	} {
		if n, ok := readKey(f, "oom_kill"); ok {
			return n > 0
		}
	}
	return false
}

func readKey(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
