package image

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Docker Hub's names: references without a domain belong to DefaultDomain,
// and its one-component repositories live under "library/".
const (
	DefaultDomain = "docker.io"
	DefaultTag    = "latest"
	legacyDomain  = "index.docker.io"
	officialRepo  = "library/"
	maxNameLen    = 255
	maxTagLen     = 128
)

// Reference is a parsed, normalised image reference:
// Domain/Path[:Tag][@Digest]. A reference from ParseReference always has a
// Tag or a Digest (DefaultTag when neither was given); when both were given
// the Digest decides what is pulled and the Tag is kept for display only.
type Reference struct {
	Domain string // "docker.io", "localhost:5000", "127.0.0.1:5000"
	Path   string // "library/busybox", "app"
	Tag    string
	Digest digest.Digest
}

// ParseReference parses and normalises s the way docker does: "busybox"
// becomes docker.io/library/busybox:latest, "busybox:1.36" keeps its tag,
// "localhost:5000/app@sha256:..." keeps its domain and digest. The grammar
// is the distribution reference grammar (lowercase path components joined
// by '/', separators '.', '_', '__' or dashes; tags of at most 128 word
// characters, dots and dashes, not starting with either; a domain when the
// first component contains '.' or ':', or is "localhost", or has
// uppercase letters). Errors are ErrInvalidArgument-class and say which part
// is wrong.
func ParseReference(s string) (Reference, error) {
	r, err := parseReference(s)
	if err != nil {
		return Reference{}, fmt.Errorf("invalid reference %q: %s: %w", s, err, errdefs.ErrInvalidArgument)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}

// ParseNamed parses a name as docker's CLI and its API handlers do
// (distribution's ParseNormalizedNamed): normalised like ParseReference,
// but a missing tag stays missing, and the errors are docker's own words,
// which users and tests compare.
func ParseNamed(s string) (Reference, error) {
	if isHex64(s) {
		return Reference{}, fmt.Errorf("invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s)
	}
	domain, remainder := splitDomain(s)
	if domain == DefaultDomain && !strings.Contains(remainder, "/") {
		remainder = officialRepo + remainder
	}
	remote, _, _ := strings.Cut(remainder, ":")
	if strings.ToLower(remote) != remote {
		return Reference{}, fmt.Errorf("invalid reference format: repository name (%s) must be lowercase", remote)
	}
	r, err := parseReference(s)
	if errors.Is(err, errNameTooLong) {
		return Reference{}, err
	}
	if err != nil {
		return Reference{}, errors.New("invalid reference format")
	}
	return r, nil
}

// WithTag is r with tag in place of its tag (docker's reference.WithTag).
func (r Reference) WithTag(tag string) (Reference, error) {
	if !validTag(tag) {
		return Reference{}, errors.New("invalid tag format")
	}
	r.Tag = tag
	return r, nil
}

// OrLatest is r with DefaultTag when it names neither tag nor digest.
func (r Reference) OrLatest() Reference {
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r
}

// FamiliarName is the short repository name without tag or digest:
// "busybox", "localhost:5000/app".
func (r Reference) FamiliarName() string {
	r.Tag, r.Digest = "", ""
	return r.Familiar()
}

// ParseRepository parses a repository name without tag or digest
// ("busybox", "localhost:5000/app") and normalises it like ParseReference.
func ParseRepository(s string) (Reference, error) {
	if strings.ContainsAny(s, "@") || strings.Contains(lastComponent(s), ":") {
		return Reference{}, fmt.Errorf("invalid repository %q: must not have a tag or digest: %w", s, errdefs.ErrInvalidArgument)
	}
	r, err := parseReference(s)
	if err != nil {
		return Reference{}, fmt.Errorf("invalid repository %q: %s: %w", s, err, errdefs.ErrInvalidArgument)
	}
	r.Tag = ""
	return r, nil
}

func lastComponent(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

var errNameTooLong = fmt.Errorf("repository name must not be more than %d characters", maxNameLen)

// parseReference parses and normalises s; the tag stays empty when s
// names none.
func parseReference(s string) (Reference, error) {
	var r Reference
	if s == "" {
		return r, fmt.Errorf("empty")
	}
	if strings.Contains(s, "://") {
		return r, fmt.Errorf("a reference has no URL scheme")
	}
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d := digest.Digest(rest[i+1:])
		if err := d.Validate(); err != nil {
			return r, fmt.Errorf("digest %q: %v", d, err)
		}
		r.Digest = d
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "/") {
		r.Tag = rest[i+1:]
		if !validTag(r.Tag) {
			return r, fmt.Errorf("tag %q: must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", r.Tag)
		}
		rest = rest[:i]
	}
	if rest == "" {
		return r, fmt.Errorf("no repository name")
	}
	domain, path := splitDomain(rest)
	if domain != DefaultDomain {
		if err := validDomain(domain); err != nil {
			return r, err
		}
	}
	for _, c := range strings.Split(path, "/") {
		if !validPathComponent(c) {
			return r, fmt.Errorf("repository component %q: must be lowercase letters and digits, separated by '.', '_', '__' or dashes", c)
		}
	}
	if domain == DefaultDomain && !strings.Contains(path, "/") {
		path = officialRepo + path
	}
	// As docker, the limit is on the path alone.
	if len(path) > maxNameLen {
		return r, errNameTooLong
	}
	// docker refuses names that look like image IDs, so "docker run <id>"
	// can never be mistaken for a pull.
	if domain == DefaultDomain && isHex64(strings.TrimPrefix(path, officialRepo)) {
		return r, fmt.Errorf("a repository name cannot be a 64-character hexadecimal string (an image ID)")
	}
	r.Domain, r.Path = domain, path
	return r, nil
}

// splitDomain separates a leading domain from the path, docker's way.
func splitDomain(s string) (domain, path string) {
	first, rest, ok := strings.Cut(s, "/")
	if !ok || (first != "localhost" && !strings.ContainsAny(first, ".:") && strings.ToLower(first) == first) {
		return DefaultDomain, s
	}
	if first == legacyDomain {
		first = DefaultDomain
	}
	return first, rest
}

func validDomain(d string) error {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return fmt.Errorf("domain %q: unclosed '['", d)
		}
		host, port = d[1:end], strings.TrimPrefix(d[end+1:], ":")
		if net.ParseIP(host) == nil {
			return fmt.Errorf("domain %q: bad IPv6 address", d)
		}
		if d[end+1:] != "" && !strings.HasPrefix(d[end+1:], ":") {
			return fmt.Errorf("domain %q: junk after ']'", d)
		}
	} else if h, p, ok := strings.Cut(d, ":"); ok {
		host, port = h, p
		if port == "" {
			return fmt.Errorf("domain %q: empty port", d)
		}
	}
	if port != "" {
		for _, c := range port {
			if c < '0' || c > '9' {
				return fmt.Errorf("domain %q: port must be a number", d)
			}
		}
	}
	if strings.HasPrefix(d, "[") {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %q: bad label %q", d, label)
		}
		for _, c := range label {
			if !isAlnum(c) && c != '-' && !(c >= 'A' && c <= 'Z') {
				return fmt.Errorf("domain %q: bad character %q", d, c)
			}
		}
	}
	return nil
}

func validPathComponent(c string) bool {
	if c == "" || !isLowerAlnum(rune(c[0])) || !isLowerAlnum(rune(c[len(c)-1])) {
		return false
	}
	for i := 0; i < len(c); i++ {
		if isLowerAlnum(rune(c[i])) {
			continue
		}
		// A separator run: ".", "_", "__" or any number of dashes.
		j := i
		for j < len(c) && !isLowerAlnum(rune(c[j])) {
			j++
		}
		sep := c[i:j]
		if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return false
		}
		i = j - 1
	}
	return true
}

func validTag(t string) bool {
	if t == "" || len(t) > maxTagLen || t[0] == '.' || t[0] == '-' {
		return false
	}
	for _, c := range t {
		if !isAlnum(c) && c != '_' && c != '.' && c != '-' && !(c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func isLowerAlnum(c rune) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }
func isAlnum(c rune) bool      { return isLowerAlnum(c) }

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Name is the repository: Domain/Path.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised form: Name[:Tag][@Digest].
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar is the short form docker prints: "busybox:latest",
// "localhost:5000/app@sha256:...".
func (r Reference) Familiar() string {
	s := r.String()
	if r.Domain == DefaultDomain {
		s = strings.TrimPrefix(strings.TrimPrefix(s, DefaultDomain+"/"), officialRepo)
	}
	return s
}

// Tagged returns the reference with tag, without digest.
func (r Reference) Tagged(tag string) Reference {
	r.Tag, r.Digest = tag, ""
	return r
}

// Digested returns the reference with digest d, without tag.
func (r Reference) Digested(d digest.Digest) Reference {
	r.Tag, r.Digest = "", d
	return r
}

// IsTagged reports a reference naming a tag and no digest.
func (r Reference) IsTagged() bool { return r.Tag != "" && r.Digest == "" }
