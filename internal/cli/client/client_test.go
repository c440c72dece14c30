package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
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
	_, err = api.ContainerList(context.Background(), ContainerListOptions{})
	want := "cannot connect to berth at " + host + ": is `berth daemon` running?"
	if got := Explain(err, host); got == nil || got.Error() != want {
		t.Errorf("got %v, want %q", got, want)
	}
	for _, bad := range []string{"tcp://[::1", "/no/scheme", "ssh://x"} {
		if _, err := New(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// fakeDaemon is an httptest server answering /_ping with version and
// recording the paths asked for.
type fakeDaemon struct {
	mu    sync.Mutex
	paths []string
	pings int
}

func (f *fakeDaemon) start(t *testing.T, version string, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.paths = append(f.paths, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		if r.URL.Path == "/_ping" {
			f.mu.Lock()
			f.pings++
			f.mu.Unlock()
			if version != "" {
				w.Header().Set("API-Version", version)
			}
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New("tcp://" + srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVersionNegotiation(t *testing.T) {
	for _, c := range []struct{ server, want string }{
		{"1.44", "/v1.44/"},
		{"1.99", "/v" + MaxAPIVersion + "/"},
		{"", "/v" + MaxAPIVersion + "/"},
	} {
		var f fakeDaemon
		api := f.start(t, c.server, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"Id":"abc","Names":["/x"]}]`)
		})
		for range 2 {
			res, err := api.ContainerList(context.Background(), ContainerListOptions{All: true, Filters: Filters{}.Add("label", "a=b")})
			if err != nil || len(res.Items) != 1 || res.Items[0].ID != "abc" {
				t.Fatalf("server %q: %+v %v", c.server, res, err)
			}
		}
		if f.pings != 1 {
			t.Errorf("server %q: %d pings, want 1", c.server, f.pings)
		}
		last := f.paths[len(f.paths)-1]
		if !strings.HasPrefix(last, "GET "+c.want+"containers/json?") || !strings.Contains(last, "all=1") || !strings.Contains(last, "filters=") {
			t.Errorf("server %q: asked %q, want %s prefix", c.server, last, c.want)
		}
		if c.server == "1.44" && api.ClientVersion() != "1.44" {
			t.Errorf("ClientVersion %q", api.ClientVersion())
		}
	}
	var f fakeDaemon
	api := f.start(t, "1.20", func(http.ResponseWriter, *http.Request) {})
	_, err := api.Info(context.Background(), InfoOptions{})
	if err == nil || !strings.Contains(err.Error(), "API version 1.20 is not supported by this client") {
		t.Errorf("old daemon: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	var f fakeDaemon
	api := f.start(t, "1.56", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.56/containers/gone/json":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"No such container: gone"}`)
		case "/v1.56/containers/busy":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"message":"container is running"}`+"\n")
		case "/v1.56/containers/x/start":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "plain words\n")
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	ctx := context.Background()
	_, err := api.ContainerInspect(ctx, "gone", ContainerInspectOptions{})
	if err == nil || err.Error() != "Error response from daemon: No such container: gone" || !cerrdefs.IsNotFound(err) {
		t.Errorf("404: %v", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("404 status lost: %#v", err)
	}
	_, err = api.ContainerRemove(ctx, "busy", ContainerRemoveOptions{})
	if err == nil || err.Error() != "Error response from daemon: container is running" || !cerrdefs.IsConflict(err) {
		t.Errorf("409: %v", err)
	}
	_, err = api.ContainerStart(ctx, "x", ContainerStartOptions{})
	if err == nil || err.Error() != "Error response from daemon: plain words" || !cerrdefs.IsInternal(err) {
		t.Errorf("500: %v", err)
	}
	_, err = api.ContainerStatPath(ctx, "x", ContainerStatPathOptions{Path: "/a"})
	if err == nil || !strings.Contains(err.Error(), "request returned 404 Not Found for API route and version") || !cerrdefs.IsNotFound(err) {
		t.Errorf("HEAD 404: %v", err)
	}
	_, err = api.ContainerStart(ctx, " ", ContainerStartOptions{})
	if err == nil || err.Error() != "invalid container name or ID: value is empty" || !cerrdefs.IsInvalidArgument(err) {
		t.Errorf("empty id: %v", err)
	}
	if IsErrConnectionFailed(err) {
		t.Error("a refusal taken for a connection failure")
	}
}

// TestHijack drives an attach through a daemon that upgrades, echoes
// stdin until EOF (the client's CloseWrite), then says goodbye and hangs up.
func TestHijack(t *testing.T) {
	var f fakeDaemon
	api := f.start(t, "1.56", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "tcp" || r.URL.Query().Get("stdin") != "1" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhi ")
		in, _ := io.ReadAll(buf)
		conn.Write(in)
		io.WriteString(conn, " bye")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	att, err := api.ContainerAttach(ctx, "c", ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	if _, err := io.WriteString(att.Conn, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := att.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(att.Reader)
	if err != nil || string(out) != "hi hello bye" {
		t.Errorf("stream %q %v", out, err)
	}

	// A refusal instead of an upgrade is the daemon's error.
	api2 := (&fakeDaemon{}).start(t, "1.56", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"No such exec instance: e"}`)
	})
	_, err = api2.ExecAttach(ctx, "e", ExecAttachOptions{})
	if err == nil || err.Error() != "Error response from daemon: No such exec instance: e" || !cerrdefs.IsNotFound(err) {
		t.Errorf("refused upgrade: %v", err)
	}
}

// TestWaitAndEvents checks the two calls answering on channels.
func TestWaitAndEvents(t *testing.T) {
	api := (&fakeDaemon{}).start(t, "1.56", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/wait"):
			if r.URL.Query().Get("condition") != "removed" {
				http.Error(w, "condition", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			io.WriteString(w, `{"StatusCode":7}`)
		case strings.HasSuffix(r.URL.Path, "/events"):
			if r.URL.Query().Get("since") == "" {
				http.Error(w, "since", http.StatusBadRequest)
				return
			}
			bw := bufio.NewWriter(w)
			bw.WriteString(`{"Type":"container","Action":"start"}` + "\n" + `{"Type":"container","Action":"die"}` + "\n")
			bw.Flush()
		}
	})
	ctx := context.Background()
	wait := api.ContainerWait(ctx, "c", ContainerWaitOptions{Condition: "removed"})
	select {
	case res := <-wait.Result:
		if res.StatusCode != 7 {
			t.Errorf("status %d", res.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatal(err)
	}
	ev := api.Events(ctx, EventsListOptions{Since: "10m"})
	var got []string
	for {
		select {
		case m := <-ev.Messages:
			got = append(got, string(m.Action))
			continue
		case err := <-ev.Err:
			if !errors.Is(err, io.EOF) {
				t.Errorf("events ended with %v", err)
			}
		}
		break
	}
	if strings.Join(got, ",") != "start,die" {
		t.Errorf("events %v", got)
	}
}

func TestAPITimestamp(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, c := range []struct{ in, want string }{
		{"10m", "1714978689"},
		{"1714978689", "1714978689"},
		{"1714978689.5", "1714978689.5"},
		{"2024-05-06T07:08:09Z", "1714979289.000000000"},
		{"2024-05-06T07:08Z", "1714979280.000000000"},
		{"2024-05-06T07:08:09.25+01:00", "1714975689.250000000"},
		{"2024-05-06", "1714953600.000000000"},
	} {
		got, err := apiTimestamp(c.in, now)
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, got, err, c.want)
		}
	}
	if _, err := apiTimestamp("yesterday", now); err == nil || err.Error() != `failed to parse value as time or duration: "yesterday"` {
		t.Errorf("bad value: %v", err)
	}
}
