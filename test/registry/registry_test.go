// Package registry_test drives `berth registry` end to end: the binary with
// its flags (htpasswd, bearer tokens, TLS-less loopback, gc while serving,
// SIGTERM), and berth's own pull/push client against it.
package registry_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthbin"
)

var berthBin string

func TestMain(m *testing.M) {
	bin, err := berthbin.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	berthBin = bin
	cleanCgroups := testutil.CgroupParents("berth", "berth-test")
	code := m.Run()
	cleanCgroups()
	os.RemoveAll(filepath.Dir(berthBin))
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve starts `berth registry serve` and returns its address; the process
// gets SIGTERM at cleanup and must exit 0.
func serve(t *testing.T, root string, args ...string) (string, *exec.Cmd) {
	t.Helper()
	addr := freeAddr(t)
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "ADDR", addr)
	}
	cmd := exec.Command(berthBin, append([]string{"registry", "serve", "--addr", addr, "--root", root}, args...)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "registry serving") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("registry did not start")
	}
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("registry exit: %v", err)
		}
	})
	return addr, cmd
}

func htpasswd(t *testing.T, user, pass string) string {
	t.Helper()
	h, _ := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	p := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(p, []byte(user+":"+string(h)+"\n"), 0o600)
	return p
}

func skopeo(t *testing.T, home string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed (apt-get install skopeo)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ociLayout writes a one-layer OCI image layout tagged v1 with skopeo's
// help: it copies a tiny directory image made by hand.
func ociLayout(t *testing.T, dir string) string {
	t.Helper()
	// skopeo's dir: transport reads manifest.json plus blobs named by hex.
	src := filepath.Join(dir, "dirimg")
	os.MkdirAll(src, 0o755)
	layer := tarGz(t, "hello.txt", "hello from the registry e2e test\n")
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + layer.diffID + `"]}}`)
	cfgD := sha(cfg)
	os.WriteFile(filepath.Join(src, strings.TrimPrefix(cfgD, "sha256:")), cfg, 0o644)
	os.WriteFile(filepath.Join(src, strings.TrimPrefix(layer.digest, "sha256:")), layer.bytes, 0o644)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`,
		cfgD, len(cfg), layer.digest, len(layer.bytes))
	os.WriteFile(filepath.Join(src, "manifest.json"), []byte(m), 0o644)
	os.WriteFile(filepath.Join(src, "version"), []byte("Directory Transport Version: 1.1\n"), 0o644)
	return src
}

func TestCLIServeTokenAndGC(t *testing.T) {
	root := t.TempDir()
	pw := htpasswd(t, "e2e", "pass")
	addr, _ := serve(t, root, "--htpasswd", pw, "--token-realm", "http://ADDR/token", "--delete-enabled")
	home := t.TempDir()
	src := ociLayout(t, home)

	if out, err := skopeo(t, home, "copy", "--dest-tls-verify=false", "dir:"+src, "docker://"+addr+"/e2e/anon:v1"); err == nil {
		t.Fatalf("anonymous push succeeded: %s", out)
	}
	if out, err := skopeo(t, home, "copy", "--dest-tls-verify=false", "--dest-creds", "e2e:pass", "dir:"+src, "docker://"+addr+"/e2e/app:v1"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	back := filepath.Join(home, "back")
	if out, err := skopeo(t, home, "copy", "--src-tls-verify=false", "--src-creds", "e2e:pass", "docker://"+addr+"/e2e/app:v1", "oci:"+back+":v1"); err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}

	// Delete the manifest, then gc while the server runs: the layer and
	// config go, through the server's admin socket.
	out, err := skopeo(t, home, "delete", "--tls-verify=false", "--creds", "e2e:pass", "docker://"+addr+"/e2e/app:v1")
	if err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	gc := exec.Command(berthBin, "registry", "gc", "--root", root, "--grace", "0s")
	gout, err := gc.CombinedOutput()
	if err != nil {
		t.Fatalf("gc: %v\n%s", err, gout)
	}
	if !regexp.MustCompile(`deleted 3 blobs`).Match(gout) {
		t.Fatalf("gc output: %s", gout)
	}

	// Metrics and the read of /v2/ with a token flow.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `berth_registry_http_requests_total{route="manifest",method="PUT",code="201"} 1`) {
		t.Fatalf("metrics:\n%s", b)
	}
}

func TestCLIReadOnly(t *testing.T) {
	root := t.TempDir()
	addr, cmd := serve(t, root)
	home := t.TempDir()
	src := ociLayout(t, home)
	if out, err := skopeo(t, home, "copy", "--dest-tls-verify=false", "dir:"+src, "docker://"+addr+"/ro/app:v1"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	// Offline gc with the default grace keeps the fresh blobs.
	if out, err := exec.Command(berthBin, "registry", "gc", "--root", root).CombinedOutput(); err != nil || !strings.Contains(string(out), "deleted 0 blobs") {
		t.Fatalf("offline gc: %v %s", err, out)
	}
	addr, _ = serve(t, root, "--read-only")
	if out, err := skopeo(t, home, "copy", "--dest-tls-verify=false", "dir:"+src, "docker://"+addr+"/ro/other:v1"); err == nil {
		t.Fatalf("push to a read-only registry: %s", out)
	}
	if out, err := skopeo(t, home, "inspect", "--tls-verify=false", "docker://"+addr+"/ro/app:v1"); err != nil {
		t.Fatalf("pull from read-only: %v\n%s", err, out)
	}
}
