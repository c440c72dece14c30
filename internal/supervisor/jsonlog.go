package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// LogEntry is one line of docker's json-file log driver.
type LogEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// maxLine is where a line without a newline is cut into a partial entry,
// as docker's 16 KiB log buffer does, so that a process writing no newlines
// cannot grow the supervisor's memory.
const maxLine = 16 << 10

// JSONLog writes a container's output in docker's json-file format, rotating
// at MaxSize into path.1 … path.(MaxFiles-1).
type JSONLog struct {
	path     string
	maxSize  int64 // <= 0: never rotate
	maxFiles int   // files kept in all, the live one included; >= 1

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte // encoding scratch, reused
}

// OpenJSONLog opens (appending to) the log at path.
func OpenJSONLog(path string, maxSize int64, maxFiles int) (*JSONLog, error) {
	if maxFiles < 1 {
		maxFiles = 1
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat log: %w", err)
	}
	return &JSONLog{path: path, maxSize: maxSize, maxFiles: maxFiles, f: f, size: st.Size()}, nil
}

// Write records one entry.
func (l *JSONLog) Write(stream string, line []byte, t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	// Encoding by hand avoids a reflection walk and an allocation per line;
	// the string escaping is encoding/json's.
	b := append(l.buf[:0], `{"log":`...)
	b = appendJSONString(b, line)
	b = append(b, `,"stream":`...)
	b = strconv.AppendQuote(b, stream) // "stdout"/"stderr": plain ASCII
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, "\"}\n"...)
	l.buf = b
	if l.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	return err
}

func appendJSONString(b, s []byte) []byte {
	enc, err := json.Marshal(string(s))
	if err != nil { // cannot happen for a string
		return append(b, `""`...)
	}
	return append(b, enc...)
}

func (l *JSONLog) rotate() error {
	if l.maxFiles > 1 {
		for i := l.maxFiles - 1; i > 1; i-- {
			_ = os.Rename(l.path+"."+strconv.Itoa(i-1), l.path+"."+strconv.Itoa(i))
		}
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE
	if l.maxFiles == 1 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(l.path, flags, 0o640)
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	l.f.Close()
	l.f, l.size = f, 0
	return nil
}

// Close closes the file.
func (l *JSONLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// copyLines reads r to its end and logs each line (newline kept, as docker
// does) under stream; a line longer than maxLine is logged in pieces.
func copyLines(l *JSONLog, stream string, r io.Reader, buf []byte) error {
	var pending int // bytes of buf holding an unfinished line
	for {
		n, err := r.Read(buf[pending:])
		data := buf[:pending+n]
		now := time.Now()
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			if werr := l.Write(stream, data[:i+1], now); werr != nil {
				return werr
			}
			data = data[i+1:]
		}
		if len(data) == len(buf) || (err != nil && len(data) > 0) {
			if werr := l.Write(stream, data, now); werr != nil {
				return werr
			}
			data = data[:0]
		}
		pending = copy(buf, data)
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
