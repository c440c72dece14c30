package engine_test

import (
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestMain removes the engine's parent cgroup directories the tests' daemons
// created, once their containers are gone, and the built binary.
func TestMain(m *testing.M) {
	clean := testutil.CgroupParents("berth", "berth-test")
	code := m.Run()
	clean()
	berth.Remove()
	os.Exit(code)
}
