// Command pull measures a cold pull of a Debian-like image from a loopback
// docker-registry by berth, by a private dockerd (Debian docker.io, driven
// with its CLI) and by podman, alternating in the same run, against
// downloading the same blobs alone and gunzipping them on one core (the
// floor for any puller of gzip layers).
//
// The image is synthetic, built once and kept in the cache directory (the
// registry's storage): a layer of shared libraries from the host's
// /usr/lib/x86_64-linux-gnu, one of /usr/share (many small files), one of
// 24 MiB of random bytes and one of 2,000 small generated files, about
// 120 MB gzip. Every tool's store lives below one directory in the cache,
// so all pull onto the same filesystem. Until the daemon exists berth is
// driven through the packages; see bench/pull/run.sh.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/distribution/registrytest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/testutil"
)

const repo = "bench/debianlike"

func main() {
	cache := flag.String("cache", "/var/tmp/berth-bench-pull", "keeps the registry storage with the image between runs")
	runs := flag.Int("runs", 3, "cold pulls to time (the median is reported)")
	verbose := flag.Bool("v", false, "print the pull's progress events with timestamps")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the pulls to this file")
	peers := flag.String("peers", "docker,podman", "other tools pulling the same image in the same runs (comma-separated; empty for berth alone)")
	wipe := flag.String("wipe", string(wipeFresh), "how stores are emptied between runs: fresh (a new store per run, all deleted at the end) or delete (each tool removes the image its own way)")
	keep := flag.Bool("keep", false, "keep the stores at the end (to delete later, away from a measurement)")
	settle := flag.Duration("settle", 2*time.Second, "pause after each sync, before each timed pull")
	berthMode := flag.String("berth", "daemon", "how berth pulls: daemon (`berth pull` against a private `berth daemon`) or inproc (the packages in this process)")
	berthBin := flag.String("berth-bin", "", "the berth binary (for -berth daemon)")
	flag.Parse()
	mode := wipeMode(*wipe)
	if mode != wipeFresh && mode != wipeDelete {
		log.Fatalf("-wipe: want fresh or delete, got %q", *wipe)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*cache, 0o755); err != nil {
		log.Fatal(err)
	}
	_, statErr := os.Stat(filepath.Join(*cache, "registry", "storage"))
	if err := os.MkdirAll(filepath.Join(*cache, "registry"), 0o755); err != nil {
		log.Fatal(err)
	}
	reg, err := registrytest.StartDir(filepath.Join(*cache, "registry"))
	if err != nil {
		log.Fatal(err)
	}
	atExit(reg.Stop)
	ref := reg.Addr + "/" + repo + ":1"
	if statErr != nil {
		fmt.Println("building and pushing the image (once)...")
		if err := build(ctx, filepath.Join(*cache, "build"), ref); err != nil {
			die(err)
		}
	}

	layers, total, err := layerURLs(reg.Addr)
	if err != nil {
		die(err)
	}
	fmt.Printf("image: %d layers, %.1f MB compressed\n", len(layers), float64(total)/1e6)

	// Download alone: the blobs to nowhere, 3 at a time like the pull.
	var dl []float64
	for range *runs {
		t0 := time.Now()
		if err := download(layers); err != nil {
			die(err)
		}
		dl = append(dl, time.Since(t0).Seconds())
	}

	// gunzip of the same blobs on one core, from memory.
	blobs := make([][]byte, len(layers))
	for i, u := range layers {
		if blobs[i], err = get(u); err != nil {
			die(err)
		}
	}
	var gz []float64
	var unpacked int64
	for range *runs {
		t0 := time.Now()
		unpacked = 0
		for _, b := range blobs {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				die(err)
			}
			n, err := io.Copy(io.Discard, zr)
			if err != nil {
				die(err)
			}
			unpacked += n
		}
		gz = append(gz, time.Since(t0).Seconds())
	}
	fmt.Printf("unpacked: %.1f MB\n", float64(unpacked)/1e6)

	// Cold pulls, alternating the tools in a rotating order so the
	// machine's drift spreads over all of them; every store lives below
	// runRoot, on the cache's filesystem.
	runRoot, err := os.MkdirTemp(*cache, "runs-")
	if err != nil {
		die(err)
	}
	atExit(func() {
		if err := testutil.UnmountUnder(runRoot); err != nil {
			fmt.Fprintln(os.Stderr, "pull bench: cleanup:", err)
		}
		if *keep {
			fmt.Printf("stores kept in %s (their mounts detached)\n", runRoot)
			return
		}
		os.RemoveAll(runRoot)
	})
	var pullers []puller
	var bd *berthDaemonPeer
	switch *berthMode {
	case "inproc":
		bp := &berthPeer{dir: filepath.Join(runRoot, "berth"), ref: ref, mode: mode, verbose: *verbose}
		atExit(bp.close)
		pullers = append(pullers, bp)
	case "daemon":
		var err error
		bd, err = newBerthDaemonPeer(ctx, *berthBin, filepath.Join(runRoot, "berth"), ref, mode)
		if bd != nil {
			atExit(bd.close)
		}
		if err != nil {
			die(err)
		}
		pullers = append(pullers, bd)
	default:
		die(fmt.Errorf("-berth: want daemon or inproc, got %q", *berthMode))
	}
	for _, name := range strings.Split(*peers, ",") {
		var p puller
		var err error
		switch name {
		case "":
			continue
		case "docker":
			p, err = newDockerPeer(ctx, filepath.Join(runRoot, "docker"), reg.Addr, ref, mode)
		case "podman":
			p, err = newPodmanPeer(filepath.Join(runRoot, "podman"), reg.Addr, ref, mode)
		default:
			err = fmt.Errorf("unknown peer %q", name)
		}
		if p != nil {
			atExit(p.close)
		}
		if err != nil {
			die(err)
		}
		pullers = append(pullers, p)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			die(err)
		}
		pprof.StartCPUProfile(f)
		atExit(pprof.StopCPUProfile)
	}
	times := make([][]float64, len(pullers))
	var berthCPU []float64 // user+system seconds of this process per berth pull
	for run := range *runs {
		for k := range pullers {
			i := (k + run) % len(pullers)
			p := pullers[i]
			if err := p.reset(ctx, run); err != nil {
				die(fmt.Errorf("%s: reset: %w", p.name(), err))
			}
			// No tool pays for another's writeback.
			syscall.Sync()
			time.Sleep(*settle)
			cpu0 := cpuTime()
			t0 := time.Now()
			if err := p.pull(ctx); err != nil {
				die(fmt.Errorf("%s: pull: %w", p.name(), err))
			}
			times[i] = append(times[i], time.Since(t0).Seconds())
			if i == 0 {
				if bd != nil {
					berthCPU = append(berthCPU, bd.lastCPU)
				} else {
					berthCPU = append(berthCPU, cpuTime()-cpu0)
				}
			}
			if *verbose {
				fmt.Printf("run %d: %s %.2f s\n", run, p.name(), times[i][run])
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	d, g := median(dl), median(gz)
	b := median(times[0])
	fmt.Printf("stores: %s (%s between runs)\n", runRoot, mode)
	fmt.Printf("download only:        %.2f s (median of %d: %v)\n", d, *runs, round(dl))
	fmt.Printf("gunzip, one core:     %.2f s (%v)\n", g, round(gz))
	for i, p := range pullers {
		fmt.Printf("%-7s pull, cold:   %.2f s (%v)\n", p.name(), median(times[i]), round(times[i]))
	}
	fmt.Printf("berth CPU per pull:   %.2f s user+system of the %s (%v)\n", median(berthCPU), map[bool]string{true: "daemon", false: "process"}[bd != nil], round(berthCPU))
	fmt.Printf("berth / (download + gunzip) = %.2f (target <= 1.5)\n", b/(d+g))
	for i, p := range pullers[1:] {
		fmt.Printf("%s / berth = %.2f (target >= 3)\n", p.name(), median(times[i+1])/b)
	}
	fmt.Printf("load average at the end: %s", load)
	exit(0)
}

// cpuTime is the user+system CPU time this process has used, in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// berthPeer pulls with the packages, in-process, until the daemon exists;
// its store is opened before the clock starts, as a daemon's would be.
type berthPeer struct {
	dir, ref string
	mode     wipeMode
	verbose  bool
	root     string
	s        *image.Service
}

func (b *berthPeer) name() string { return "berth" }

func (b *berthPeer) reset(ctx context.Context, run int) error {
	b.close()
	if b.mode == wipeDelete && b.root != "" {
		if err := os.RemoveAll(b.root); err != nil {
			return err
		}
	}
	b.root = filepath.Join(b.dir, fmt.Sprint(run))
	var err error
	b.s, err = image.Open(ctx, b.root, image.Options{})
	return err
}

func (b *berthPeer) pull(ctx context.Context) error {
	t0 := time.Now()
	var opts distribution.PullOptions
	if b.verbose {
		opts.Progress = func(p distribution.Progress) {
			if p.Status != distribution.StatusDownloading && (p.Status != distribution.StatusExtracting || p.Current == 0) {
				fmt.Printf("%6.3f %s %s %s\n", time.Since(t0).Seconds(), p.ID, p.Status, p.Detail)
			}
		}
	}
	_, err := distribution.New(b.s, distribution.Options{}).Pull(ctx, b.ref, opts)
	return err
}

func (b *berthPeer) close() {
	if b.s != nil {
		b.s.Close()
		b.s = nil
	}
}

// Cleanup that must run however the program ends: peers stopped by PID,
// their mounts detached, their directories removed.
var (
	cleanups    []func()
	cleanupOnce sync.Once
)

func atExit(f func()) { cleanups = append(cleanups, f) }

func exit(code int) {
	cleanupOnce.Do(func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	})
	os.Exit(code)
}

func die(err error) {
	// Not log.Print: slog.SetDefault routes it to slog at Info, filtered out.
	fmt.Fprintln(os.Stderr, "pull bench:", err)
	exit(1)
}

// build makes the image in a scratch store and pushes it.
func build(ctx context.Context, dir, ref string) error {
	defer os.RemoveAll(dir)
	s, err := image.Open(ctx, dir, image.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	var layers []io.Reader
	for _, gen := range []func(*tar.Writer) error{
		hostTree("/usr/lib/x86_64-linux-gnu", 120<<20),
		hostTree("/usr/share", 80<<20),
		randomFile(24 << 20),
		smallFiles(2000),
	} {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := gen(tw)
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		layers = append(layers, pr)
	}
	cfg := v1.Image{Config: v1.ImageConfig{Cmd: []string{"/bin/sh"}}}
	if _, err := s.CreateFromLayers(ctx, ref, cfg, layers...); err != nil {
		return err
	}
	_, err = distribution.New(s, distribution.Options{}).Push(ctx, ref, distribution.PushOptions{})
	return err
}

// hostTree writes the regular files and directories below root, in name
// order, until budget bytes of file data.
func hostTree(root string, budget int64) func(*tar.Writer) error {
	return func(tw *tar.Writer) error {
		var paths []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && (d.IsDir() || d.Type().IsRegular()) {
				paths = append(paths, p)
			}
			return nil
		})
		sort.Strings(paths)
		var used int64
		for _, p := range paths {
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			if used+fi.Size() > budget && !fi.IsDir() {
				continue
			}
			h, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				return err
			}
			h.Name = p[1:]
			h.Uname, h.Gname = "", ""
			if fi.IsDir() {
				h.Name += "/"
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				continue
			}
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			if err := tw.WriteHeader(h); err != nil {
				f.Close()
				return err
			}
			_, err = io.CopyN(tw, f, fi.Size())
			f.Close()
			if err != nil {
				return err
			}
			used += fi.Size()
		}
		return nil
	}
}

func randomFile(n int64) func(*tar.Writer) error {
	return func(tw *tar.Writer) error {
		if err := tw.WriteHeader(&tar.Header{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "opt/random.bin", Mode: 0o644, Size: n}); err != nil {
			return err
		}
		_, err := io.CopyN(tw, rand.Reader, n)
		return err
	}
}

func smallFiles(n int) func(*tar.Writer) error {
	return func(tw *tar.Writer) error {
		if err := tw.WriteHeader(&tar.Header{Name: "srv/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
		for i := range n {
			body := fmt.Appendf(nil, "file %d\n%s\n", i, slices.Repeat([]byte("x"), i%3000))
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("srv/f%05d.txt", i), Mode: 0o644, Size: int64(len(body))}); err != nil {
				return err
			}
			if _, err := tw.Write(body); err != nil {
				return err
			}
		}
		return nil
	}
}

// layerURLs reads the image's manifest from the registry.
func layerURLs(addr string) ([]string, int64, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+repo+"/manifests/1", nil)
	req.Header.Set("Accept", v1.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var m v1.Manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, 0, err
	}
	var urls []string
	var total int64
	for _, l := range m.Layers {
		urls = append(urls, "http://"+addr+"/v2/"+repo+"/blobs/"+l.Digest.String())
		total += l.Size
	}
	return urls, total, nil
}

func download(urls []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(urls))
	sem := make(chan struct{}, distribution.DefaultMaxDownloads)
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, err := http.Get(u)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			_, errs[i] = io.Copy(io.Discard, resp.Body)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func get(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func round(xs []float64) []string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.2f", x))
	}
	return out
}
