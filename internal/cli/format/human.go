package format

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/docker/go-units"
)

// Ago is docker's CREATED column: "About a minute ago", "3 hours ago".
func Ago(now time.Time, unixSeconds int64) string {
	return units.HumanDuration(now.Sub(time.Unix(unixSeconds, 0))) + " ago"
}

// Size is docker's SIZE column: three significant digits, decimal units.
func Size(n int64) string {
	return units.HumanSizeWithPrecision(float64(n), 3)
}

// ShortID is the 12-character ID docker shows, without an algorithm prefix.
func ShortID(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// Ellipsis shortens s to width characters, the last one an ellipsis.
func Ellipsis(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	if width <= 1 {
		return string(r[:width])
	}
	return string(r[:width-1]) + "…"
}

// Quote is a string the way docker's COMMAND column quotes it.
func Quote(s string) string { return fmt.Sprintf("%q", s) }

// BinarySize is a memory size in binary units ("23.4GiB"), as docker info shows.
func BinarySize(n int64) string { return units.BytesSize(float64(n)) }
