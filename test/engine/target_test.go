package engine_test

import (
	"strings"
	"testing"
)

// TestDockerTargetOffline checks the harness's promise in
// BERTH_TEST_TARGET=docker mode: a pull that misses the loopback mirror
// falls back, as dockerd always does, to the image's registry, and that
// request ends at the closed loopback proxy instead of leaving the machine.
// (berth needs no such check: hack/test.sh runs it loopback-only.)
func TestDockerTargetOffline(t *testing.T) {
	if !onDocker {
		t.Skip("checks the private dockerd of BERTH_TEST_TARGET=docker")
	}
	d := startDaemon(t)
	for _, ref := range []string{"nosuch-berth-guard:1", "quay.io/nosuch/berth-guard:1"} {
		_, errOut, code := d.docker("pull", ref)
		if code == 0 || !strings.Contains(errOut, "proxyconnect tcp: dial tcp 127.0.0.1:9") {
			t.Errorf("docker pull %s: exit %d, %q; want the dead proxy's refusal", ref, code, errOut)
		}
	}
}
