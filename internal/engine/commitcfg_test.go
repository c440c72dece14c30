package engine

import (
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestApplyChanges(t *testing.T) {
	cfg := &container.Config{Cmd: []string{"old"}, Env: []string{"A=1"}, WorkingDir: "/app"}
	err := ApplyChanges(cfg, []string{
		`ENV B=2 C="three words"`, `env D 4 5`, `LABEL a=b "c d"=e`, `EXPOSE 80 53/udp`,
		`USER nobody`, `WORKDIR sub`, `STOPSIGNAL SIGINT`, `VOLUME ["/v1", "/v2"]`, `ENTRYPOINT /bin/tool --x`,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &container.Config{
		Env:        []string{"A=1", "B=2", "C=three words", "D=4 5"},
		Labels:     map[string]string{"a": "b", "c d": "e"},
		User:       "nobody",
		WorkingDir: "/app/sub",
		StopSignal: "SIGINT",
		Volumes:    map[string]struct{}{"/v1": {}, "/v2": {}},
		Entrypoint: []string{"/bin/sh", "-c", "/bin/tool --x"},
	}
	got := *cfg
	got.ExposedPorts = nil
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("got %+v\nwant %+v", got, *want)
	}
	if len(cfg.ExposedPorts) != 2 {
		t.Fatalf("exposed ports: %v", cfg.ExposedPorts)
	}
	cfg = &container.Config{}
	if err := ApplyChanges(cfg, []string{`CMD ["a", "b"]`, `ENTRYPOINT ["e"]`}); err != nil || !reflect.DeepEqual(cfg.Cmd, []string{"a", "b"}) {
		t.Fatalf("CMD then ENTRYPOINT keeps the CMD: %v %v", cfg.Cmd, err)
	}
	cfg = &container.Config{Env: []string{"BASE=/opt"}}
	err = ApplyChanges(cfg, []string{`ENV P=$BASE/bin`, `HEALTHCHECK --interval=5s --retries=2 CMD test -e /ok`, `ONBUILD RUN echo hi`, `CMD echo "$P"`})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Env, []string{"BASE=/opt", "P=/opt/bin"}) || cfg.Healthcheck == nil || cfg.Healthcheck.Retries != 2 ||
		cfg.Healthcheck.Interval.Seconds() != 5 || !reflect.DeepEqual(cfg.Healthcheck.Test, []string{"CMD-SHELL", "test -e /ok"}) ||
		!reflect.DeepEqual(cfg.OnBuild, []string{"RUN echo hi"}) || !reflect.DeepEqual(cfg.Cmd, []string{"/bin/sh", "-c", `echo "$P"`}) {
		t.Fatalf("expansion, healthcheck, onbuild, shell-form CMD: %+v %+v", cfg, cfg.Healthcheck)
	}
	for _, bad := range []string{"RUN true", "ENV", "LABEL novalue", "EXPOSE notaport", "FROM scratch"} {
		if err := ApplyChanges(&container.Config{}, []string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
