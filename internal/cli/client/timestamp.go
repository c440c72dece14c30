package client

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// setTimes puts since and until (when given) in q as API timestamps; on
// error, key names the bad one.
func setTimes(q url.Values, since, until string) (key string, err error) {
	now := time.Now()
	for _, t := range []struct{ key, v string }{{"since", since}, {"until", until}} {
		if t.v == "" {
			continue
		}
		ts, err := apiTimestamp(t.v, now)
		if err != nil {
			return t.key, err
		}
		q.Set(t.key, ts)
	}
	return "", nil
}

// apiTimestamp turns a --since/--until value into what the API takes
// (seconds[.nanoseconds] since the epoch), with docker's rules: a Go
// duration counts back from now; RFC 3339 dates and times, with or
// without seconds, fraction or zone (no zone: local time); a Unix
// timestamp passes through.
func apiTimestamp(v string, now time.Time) (string, error) {
	if d, err := time.ParseDuration(v); err == nil && v != "0" {
		return strconv.FormatInt(now.Add(-d).Unix(), 10), nil
	}
	// A zone is a Z, a '+', or a '-' beyond the date's two.
	zoned := strings.ContainsAny(v, "zZ+") || strings.Count(v, "-") == 3
	layout := timeLayout(v, zoned)
	var t time.Time
	var err error
	if zoned {
		t, err = time.Parse(layout, v)
	} else {
		t, err = time.ParseInLocation(layout, v, time.FixedZone(now.Zone()))
	}
	if err != nil {
		if strings.Contains(v, "-") {
			return "", err // meant as a date, and a bad one
		}
		if !isUnixTimestamp(v) {
			return "", fmt.Errorf("failed to parse value as time or duration: %q", v)
		}
		return v, nil
	}
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()), nil
}

// timeLayout picks the layout for v by its shape: a fraction, a time of
// day with hours, minutes or seconds, or a bare date.
func timeLayout(v string, zoned bool) string {
	if strings.Contains(v, ".") {
		if zoned {
			return time.RFC3339Nano
		}
		return "2006-01-02T15:04:05.999999999"
	}
	if !strings.Contains(v, "T") {
		if zoned {
			return "2006-01-02Z07:00"
		}
		return "2006-01-02"
	}
	colons := strings.Count(v, ":")
	if zoned && !strings.ContainsAny(v, "zZ") && colons > 0 {
		colons-- // the zone's own colon (+07:00)
	}
	zone := ""
	if zoned {
		zone = "Z07:00"
	}
	switch colons {
	case 0:
		return "2006-01-02T15" + zone
	case 1:
		return "2006-01-02T15:04" + zone
	}
	return "2006-01-02T15:04:05" + zone
}

// isUnixTimestamp reports SECONDS[.NANOSECONDS].
func isUnixTimestamp(v string) bool {
	s, n, frac := strings.Cut(v, ".")
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return false
	}
	if frac {
		if _, err := strconv.ParseInt(n, 10, 64); err != nil {
			return false
		}
	}
	return true
}
