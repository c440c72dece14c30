package client

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/moby/moby/client"
)

func TestHost(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{nil, DefaultHost},
		{map[string]string{"DOCKER_HOST": "unix:///d.sock"}, "unix:///d.sock"},
		{map[string]string{"DOCKER_HOST": "unix:///d.sock", "BERTH_HOST": "unix:///b.sock"}, "unix:///b.sock"},
		{map[string]string{"BERTH_HOST": " "}, DefaultHost},
	} {
		if got := Host(env(c.env)); got != c.want {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
}

func TestExplainNoDaemon(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	api, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.ContainerList(context.Background(), client.ContainerListOptions{})
	want := "cannot connect to berth at " + host + ": is `berth daemon` running?"
	if got := Explain(err, host); got == nil || got.Error() != want {
		t.Errorf("got %v, want %q", got, want)
	}
	if _, err := New("tcp://[::1"); err == nil {
		t.Error("a bad address was accepted")
	}
}
