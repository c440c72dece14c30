package registry

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/registry/auth"
)

// conformanceModule is the OCI distribution-spec conformance suite, pinned.
// `go run module@version` fetches it through the Go module proxy into the
// module cache; nothing of it is vendored or committed.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"

// runConformance runs the suite against registry (host:port) and fails the
// test when any of its checks fail. env adds settings.
func runConformance(t *testing.T, registry string, env ...string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("conformance suite needs the go command")
	}
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "run", conformanceModule)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"GOWORK=off", "GOFLAGS=-mod=mod",
		// The four workflows, in the suite's legacy variables (it maps
		// them onto its newer API switches).
		"OCI_ROOT_URL="+registry,
		"OCI_NAMESPACE=conformance/repo1",
		"OCI_CROSSMOUNT_NAMESPACE=conformance/repo2",
		"OCI_TEST_PULL=1", "OCI_TEST_PUSH=1",
		"OCI_TEST_CONTENT_DISCOVERY=1", "OCI_TEST_CONTENT_MANAGEMENT=1",
		// Optional features berth implements, so they are checked too.
		"OCI_API_BLOBS_UPLOAD_CANCEL=true", "OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true", "OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_RESULTS_DIR="+results, "OCI_LOG=error",
	)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	summary := conformanceSummary(string(out))
	t.Logf("conformance summary:\n%s", summary)
	if strings.Contains(string(out), "dial tcp") && strings.Contains(string(out), "proxy.golang.org") {
		t.Skipf("conformance module not fetchable: %s", out)
	}
	if err != nil || !strings.Contains(string(out), "OCI Conformance Test: Pass") {
		t.Fatalf("conformance failed (%v):\n%s", err, out)
	}
}

// conformanceSummary keeps the per-API and per-data lines of the report.
func conformanceSummary(out string) string {
	if i := strings.Index(out, "API conformance:"); i >= 0 {
		return out[i:]
	}
	return out
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	ts := newTestServer(t, Options{DeleteEnabled: true})
	runConformance(t, ts.url)
}

// TestConformanceTokenTLS runs the suite again through bearer tokens over
// TLS, which exercises the token endpoint on every request path.
func TestConformanceTokenTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	users := writeHtpasswd(t, "conf", "formance")
	tok := &auth.Token{Service: "berth-test", Users: users, Key: []byte("conformance-key-conformance-key!")}
	srv, err := Open(context.Background(), Options{
		Root: filepath.Join(t.TempDir(), "root"), Auth: tok, TokenPath: "/token", TokenHandler: tok,
		DeleteEnabled: true, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	tok.Realm = hs.URL + "/token"
	// The suite verifies certificates; Go clients on Linux also trust the
	// file SSL_CERT_FILE names, so the test server's certificate goes there.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	if err := os.WriteFile(ca, pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	runConformance(t, hs.URL, "SSL_CERT_FILE="+ca, "OCI_USERNAME=conf", "OCI_PASSWORD=formance")
}
