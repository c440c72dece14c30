package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestParseScope(t *testing.T) {
	for in, want := range map[string]string{
		"repository:library/busybox:pull,push": "repository:library/busybox:pull,push",
		"repository(plugin):a/b:pull":          "repository:a/b:pull",
		"registry:catalog:*":                   "registry:catalog:*",
		"repository:host:5000/app:pull":        "repository:host:5000/app:pull",
		"repository:app:":                      "repository:app:",
	} {
		a, err := ParseScope(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseScope(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	for _, bad := range []string{"", "repository", "repository:app"} {
		if _, err := ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) accepted", bad)
		}
	}
}

func TestCovers(t *testing.T) {
	g := []Access{Repository("a", "pull"), Repository("b", "*")}
	if !covers(g, Repository("a", "pull")) || covers(g, Repository("a", "push")) ||
		!covers(g, Repository("b", "push", "delete")) || covers(g, Repository("c", "pull")) {
		t.Fatal("covers is wrong")
	}
	if got := grant("u", []Access{Repository("x", "pull", "push", "bogus", "pull")}); len(got) != 1 || strings.Join(got[0].Actions, ",") != "pull,push" {
		t.Fatalf("grant: %v", got)
	}
	if got := grant("", []Access{Repository("x", "pull")}); len(got) != 0 {
		t.Fatalf("anonymous grant: %v", got)
	}
}

func TestHtpasswd(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	users, err := ParseHtpasswd([]byte("# comment\n\nalice:"+string(h)+"\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if !users.Verify("alice", "pw") || !users.Verify("alice", "pw") || users.Verify("alice", "PW") || users.Verify("bob", "pw") {
		t.Fatal("verify is wrong")
	}
	for _, bad := range []string{
		"alice:$apr1$abc$def\n",                     // MD5
		"alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", // SHA1
		"alice:plain\n",
		"nocolon\n",
	} {
		if _, err := ParseHtpasswd([]byte(bad), "test"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
