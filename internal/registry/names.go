package registry

import (
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Grammar from the distribution spec. Compiled once at package init is
// avoided: the registry is one subcommand of a binary that mostly runs
// containers, so the regexps are built on first use.
var (
	nameComponent = `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
	namePattern   = `^` + nameComponent + `(/` + nameComponent + `)*$`
	tagPattern    = `^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`
)

type matchers struct {
	name, tag *regexp.Regexp
}

func newMatchers() *matchers {
	return &matchers{name: regexp.MustCompile(namePattern), tag: regexp.MustCompile(tagPattern)}
}

// maxNameLength follows distribution: a name plus a host must fit the
// 255 bytes a docker reference may have.
const maxNameLength = 255

func (m *matchers) validName(name string) bool {
	return len(name) <= maxNameLength && m.name.MatchString(name)
}

func (m *matchers) validTag(tag string) bool { return m.tag.MatchString(tag) }

// parseDigest accepts only digests of algorithms the store can verify.
func parseDigest(s string) (digest.Digest, bool) {
	d, err := digest.Parse(s)
	if err != nil || !d.Algorithm().Available() {
		return "", false
	}
	return d, true
}

// looksLikeDigest tells a digest reference from a tag: tags cannot contain
// a colon.
func looksLikeDigest(ref string) bool { return strings.Contains(ref, ":") }
