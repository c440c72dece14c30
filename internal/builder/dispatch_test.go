package builder

import (
	"slices"
	"testing"
)

func TestExposedPorts(t *testing.T) {
	for in, want := range map[string][]string{
		"80": {"80/tcp"}, "53/udp": {"53/udp"}, "8000-8002/TCP": {"8000/tcp", "8001/tcp", "8002/tcp"},
	} {
		if got, err := exposedPorts(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"http", "80/foo", "9-1", "70000"} {
		if _, err := exposedPorts(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestResolveDest(t *testing.T) {
	for _, c := range []struct{ wd, dest, want string }{
		{"", "app", "/app"}, {"/src", "app/", "/src/app/"}, {"/src", ".", "/src/"}, {"/src", "/abs/x", "/abs/x"},
		{"", "/", "/"}, {"/w", "../x", "/x"},
	} {
		if got := resolveDest(c.wd, c.dest); got != c.want {
			t.Errorf("resolveDest(%q, %q) = %q, want %q", c.wd, c.dest, got, c.want)
		}
	}
}

func TestNextKey(t *testing.T) {
	a := nextKey("", "RUN", "x")
	if a != nextKey("", "RUN", "x") || a == nextKey("", "RUNx") || a == nextKey("", "RUN", "x", "") {
		t.Errorf("keys do not separate their parts")
	}
}
