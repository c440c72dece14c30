package runconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestBuild(t *testing.T) {
	env := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(env, []byte("# c\n\nFROM_FILE=1\nB=file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FROM_CALLER", "yes")
	o := Options{
		Env: []string{"A=1", "B=flag", "FROM_CALLER"}, EnvFiles: []string{env}, Memory: "64m", CPUs: "1.5",
		Tmpfs: []string{"/run:size=1m", "/tmp"}, Restart: "on-failure:3", Labels: []string{"a=b", "c"},
		Volumes: []string{"/h:/c:ro"}, CapDrop: []string{"ALL"}, ReadOnly: true,
	}
	o.SetPidsLimit(50)
	o.SetInit(true)
	o.SetEntrypoint("")
	c, err := o.Build([]string{"busybox", "echo", "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"FROM_FILE=1", "B=file", "A=1", "B=flag", "FROM_CALLER=yes"}; !reflect.DeepEqual(c.Config.Env, want) {
		t.Errorf("env %v, want %v", c.Config.Env, want)
	}
	if c.Config.Image != "busybox" || !reflect.DeepEqual(c.Config.Cmd, []string{"echo", "hi"}) ||
		!reflect.DeepEqual(c.Config.Entrypoint, []string{""}) || c.Config.Labels["c"] != "" || c.Config.Labels["a"] != "b" {
		t.Errorf("config %+v", c.Config)
	}
	h := c.HostConfig
	if h.Memory != 64<<20 || h.NanoCPUs != 1_500_000_000 || *h.PidsLimit != 50 || !*h.Init || !h.ReadonlyRootfs ||
		h.Tmpfs["/run"] != "size=1m" || h.Tmpfs["/tmp"] != "" ||
		h.RestartPolicy != (container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}) {
		t.Errorf("host config %+v", h)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Memory: "lots"}, `invalid argument "lots" for "-m, --memory" flag`},
		{Options{CPUs: "x"}, `invalid argument "x" for "--cpus" flag`},
		{Options{CPUs: "0.0000000001"}, "too precise"},
		{Options{Restart: "sometimes"}, "unknown policy"},
		{Options{Restart: "always:3"}, "only be used with 'on-failure'"},
		{Options{Restart: "always", Rm: true}, "cannot specify both --restart and --rm"},
		{Options{EnvFiles: []string{"/nonexistent"}}, "open env file"},
		{Options{Labels: []string{"=v"}}, "invalid label"},
	} {
		if _, err := c.o.Build([]string{"img"}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	if _, err := (&Options{}).Build(nil); err == nil {
		t.Error("no image accepted")
	}
}

func TestVolumeSpecs(t *testing.T) {
	for spec, want := range map[string]string{
		"/x": "", "v:/x": "", "/h:/x:ro,z": "", "a::/x": "", "C:/h:/x": "", "/x/": "",
		"":             "invalid empty volume spec",
		":/x":          "invalid spec: :/x: empty section between colons",
		"/x:":          "invalid spec: /x:: empty section between colons",
		"/h:/x:ro:z":   "invalid spec: /h:/x:ro:z: too many colons",
		"/h::/x":       "invalid spec: /h::/x: empty section between colons",
		"/h:/x:ro:z:w": "invalid spec: /h:/x:ro:z:w: too many colons",
	} {
		err := checkVolumeSpec(spec)
		if (want == "" && err != nil) || (want != "" && (err == nil || err.Error() != want)) {
			t.Errorf("-v %q: %v, want %q", spec, err, want)
		}
	}
	var o Options
	o.Volumes = []string{"/anon", "./rel:/r", "name:/n:ro"}
	cfg, err := o.Build([]string{"img"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Config.Volumes["/anon"]; !ok || len(cfg.HostConfig.Binds) != 2 || !strings.HasPrefix(cfg.HostConfig.Binds[0], "/") || cfg.HostConfig.Binds[1] != "name:/n:ro" {
		t.Fatalf("volumes %v binds %v", cfg.Config.Volumes, cfg.HostConfig.Binds)
	}
	o = Options{Mounts: []string{"type=bind,src=/a,dst=/b,readonly,bind-propagation=rslave"}}
	cfg, err = o.Build([]string{"img"})
	if err != nil || len(cfg.HostConfig.Mounts) != 1 || !cfg.HostConfig.Mounts[0].ReadOnly || cfg.HostConfig.Mounts[0].BindOptions.Propagation != "rslave" {
		t.Fatalf("--mount: %+v %v", cfg.HostConfig.Mounts, err)
	}
	for _, bad := range []string{"type=bind,volume-nocopy", "src=/a,dst=/b,bogus=1", "type=tmpfs,tmpfs-size=x", "type=volume,ro=maybe"} {
		o = Options{Mounts: []string{bad}}
		if _, err := o.Build([]string{"img"}); err == nil {
			t.Errorf("--mount %s accepted", bad)
		}
	}
}
