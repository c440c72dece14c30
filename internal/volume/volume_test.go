package volume

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func names(vs []Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func TestStore(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	named, err := s.Create("named", CreateOptions{Labels: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if named.Mountpoint != filepath.Join(root, "named", "_data") || named.Driver != "local" || named.Anonymous() {
		t.Fatalf("created %+v", named)
	}
	if v, err := s.Create("", CreateOptions{}); err != nil || len(v.Name) != 64 || v.Anonymous() {
		t.Fatalf("unnamed volume %+v, %v", v, err)
	} else if err := s.Remove(v.Name, false); err != nil {
		t.Fatal(err)
	}
	anon, err := s.Create("", CreateOptions{Anonymous: true})
	if err != nil || len(anon.Name) != 64 || !anon.Anonymous() {
		t.Fatalf("anonymous volume %+v, %v", anon, err)
	}
	if again, err := s.Create("named", CreateOptions{}); err != nil || again.Labels["a"] != "1" {
		t.Fatalf("create of an existing name: %+v, %v", again, err)
	}
	for _, bad := range []struct {
		name string
		o    CreateOptions
	}{
		{"x", CreateOptions{}}, {"a/b", CreateOptions{}}, {"ok", CreateOptions{Options: map[string]string{"size": "1"}}},
		{"ok", CreateOptions{Options: map[string]string{"o": "ro", "type": "tmpfs"}}},
	} {
		if _, err := s.Create(bad.name, bad.o); !errdefs.IsInvalidArgument(err) {
			t.Errorf("create %q %v: %v", bad.name, bad.o, err)
		}
	}
	if err := s.Ref("named", "c1"); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string][]string{
		"dangling=true": {anon.Name}, "dangling=false": {"named"}, "label=a=1": {"named"},
		"name=nam": {"named"}, "label=" + AnonymousLabel: {anon.Name},
	} {
		k, v, _ := strings.Cut(f, "=")
		got, err := s.List(Filters{k: {v}})
		if err != nil || !slices.Equal(names(got), want) {
			t.Errorf("list %s: %v %v, want %v", f, names(got), err, want)
		}
	}
	if _, err := s.List(Filters{"bogus": {"1"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown filter: %v", err)
	}
	if err := s.Remove("named", true); !errdefs.IsConflict(err) || err.Error() != "remove named: volume is in use - [c1]: conflict" {
		t.Errorf("remove in use: %v", err)
	}
	if err := s.Remove("nope", false); !errdefs.IsNotFound(err) || err.Error() != "get nope: no such volume: not found" {
		t.Errorf("remove missing: %v", err)
	}
	if err := os.WriteFile(filepath.Join(anon.Mountpoint, "f"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	// Restart: metadata survives, references are the engine's to restore.
	s, err = Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(nil); !slices.Equal(names(got), []string{anon.Name, "named"}) || got[1].Labels["a"] != "1" {
		t.Fatalf("after reopen: %+v", got)
	}
	rep, err := s.Prune(nil)
	if err != nil || !slices.Equal(rep.Deleted, []string{anon.Name}) || rep.SpaceReclaimed != 1000 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	rep, err = s.Prune(Filters{"all": {"true"}})
	if err != nil || !slices.Equal(rep.Deleted, []string{"named"}) {
		t.Fatalf("prune all: %+v %v", rep, err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left in the store dir: %v", ents)
	}
}
