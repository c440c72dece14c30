package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Htpasswd holds users and their bcrypt hashes, as written by
// `htpasswd -B`. Other hash kinds are refused at load: they are too weak to
// accept for a registry.
type Htpasswd struct {
	users map[string][]byte

	// verified caches successful checks by user and password hash, so
	// a push of many requests pays bcrypt's deliberate cost once.
	mu       sync.Mutex
	verified map[string][32]byte
}

// LoadHtpasswd reads path.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	return ParseHtpasswd(b, path)
}

// ParseHtpasswd parses htpasswd content; name is used in errors.
func ParseHtpasswd(b []byte, name string) (*Htpasswd, error) {
	h := &Htpasswd{users: map[string][]byte{}, verified: map[string][32]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s:%d: want user:hash", name, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd %s:%d: user %s: only bcrypt hashes are accepted (htpasswd -B): %v", name, n, user, err)
		}
		h.users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", name, err)
	}
	return h, nil
}

// Verify reports whether the password is the user's.
func (h *Htpasswd) Verify(user, pass string) bool {
	hash, ok := h.users[user]
	if !ok {
		// Spend the same time as a real check so timing does not reveal
		// which users exist.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(pass))
		return false
	}
	sum := sha256.Sum256([]byte(pass))
	h.mu.Lock()
	cached, hit := h.verified[user]
	h.mu.Unlock()
	if hit && subtle.ConstantTimeCompare(cached[:], sum[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	h.mu.Lock()
	h.verified[user] = sum
	h.mu.Unlock()
	return true
}

// dummyHash is a bcrypt hash at the default cost, made on first need.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("berth"), bcrypt.DefaultCost)
	return h
})
