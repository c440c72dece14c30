package engine

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
	"sync"

	"github.com/berth-dev/berth/internal/errdefs"
)

// validName is docker's container name rule (an optional leading slash,
// then at least two characters).
var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`) })

func checkName(name string) (string, error) {
	if !validName().MatchString(name) {
		return "", fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, errdefs.ErrInvalidArgument)
	}
	if name[0] != '/' {
		name = "/" + name
	}
	return name, nil
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Word lists for generated names, docker-style adjective_noun. berth's own
// words: harbour things and the moods of the sea.
var (
	adjectives = []string{
		"agile", "amber", "bold", "brave", "breezy", "bright", "calm", "clever",
		"cosy", "crisp", "daring", "deep", "eager", "fair", "fleet", "gentle",
		"glad", "golden", "hardy", "hazy", "jolly", "keen", "kind", "lively",
		"lucid", "merry", "misty", "nimble", "noble", "patient", "placid", "quiet",
		"rapid", "salty", "serene", "silver", "steady", "sunny", "swift", "tidy",
		"tranquil", "vivid", "wary", "windy", "witty", "zealous",
	}
	nouns = []string{
		"anchor", "barge", "beacon", "bollard", "bosun", "breakwater", "buoy", "cabin",
		"capstan", "cargo", "compass", "coxswain", "crane", "cutter", "dinghy", "dock",
		"ferry", "galley", "gangway", "harbour", "hawser", "helm", "hull", "jetty",
		"keel", "ketch", "lighthouse", "mast", "mooring", "pier", "pilot", "quay",
		"rudder", "schooner", "sextant", "skiff", "sloop", "stern", "tender", "tide",
		"trawler", "tugboat", "wharf", "yacht", "yawl",
	}
)

func pick(words []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
	if err != nil {
		return words[0]
	}
	return words[n.Int64()]
}

// generateName returns "/adjective_noun", with a digit appended after a
// few collisions, as docker does.
func generateName(taken func(string) bool) string {
	for i := 0; ; i++ {
		name := "/" + pick(adjectives) + "_" + pick(nouns)
		if i >= 5 {
			n, _ := rand.Int(rand.Reader, big.NewInt(10))
			name += n.String()
		}
		if !taken(name) {
			return name
		}
	}
}
