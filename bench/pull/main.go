// Command pull measures a cold `berth pull` of a Debian-like image from a
// loopback docker-registry, against downloading the same blobs alone and
// gunzipping them on one core (the floor for any puller of gzip layers).
//
// The image is synthetic, built once and kept in the cache directory (the
// registry's storage): a layer of shared libraries from the host's
// /usr/lib/x86_64-linux-gnu, one of /usr/share (many small files), one of
// 24 MiB of random bytes and one of 2,000 small generated files, about
// 110 MB gzip. Until the daemon exists this drives the packages directly;
// see bench/pull/run.sh.
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
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/distribution/registrytest"
	"github.com/berth-dev/berth/internal/image"
)

const repo = "bench/debianlike"

func main() {
	cache := flag.String("cache", "/var/tmp/berth-bench-pull", "keeps the registry storage with the image between runs")
	runs := flag.Int("runs", 3, "cold pulls to time (the median is reported)")
	verbose := flag.Bool("v", false, "print the pull's progress events with timestamps")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the pulls to this file")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx := context.Background()
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
	defer reg.Stop()
	ref := reg.Addr + "/" + repo + ":1"
	if statErr != nil {
		fmt.Println("building and pushing the image (once)...")
		if err := build(ctx, filepath.Join(*cache, "build"), ref); err != nil {
			log.Fatal(err)
		}
	}

	layers, total, err := layerURLs(reg.Addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("image: %d layers, %.1f MB compressed\n", len(layers), float64(total)/1e6)

	// Download alone: the blobs to nowhere, 3 at a time like the pull.
	var dl []float64
	for range *runs {
		t0 := time.Now()
		if err := download(layers); err != nil {
			log.Fatal(err)
		}
		dl = append(dl, time.Since(t0).Seconds())
	}

	// gunzip of the same blobs on one core, from memory.
	blobs := make([][]byte, len(layers))
	for i, u := range layers {
		if blobs[i], err = get(u); err != nil {
			log.Fatal(err)
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
				log.Fatal(err)
			}
			n, err := io.Copy(io.Discard, zr)
			if err != nil {
				log.Fatal(err)
			}
			unpacked += n
		}
		gz = append(gz, time.Since(t0).Seconds())
	}
	fmt.Printf("unpacked: %.1f MB\n", float64(unpacked)/1e6)

	// Cold pulls, each into a new empty store. Stores are deleted only at
	// the end: on this VM's ext4, creating files right after deleting many
	// is slow for minutes.
	runRoot, err := os.MkdirTemp(*cache, "runs-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(runRoot)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var pulls []float64
	for i := range *runs {
		s, err := image.Open(ctx, filepath.Join(runRoot, fmt.Sprint(i)), image.Options{})
		if err != nil {
			log.Fatal(err)
		}
		t0 := time.Now()
		var opts distribution.PullOptions
		if *verbose {
			opts.Progress = func(p distribution.Progress) {
				if p.Status != distribution.StatusDownloading && (p.Status != distribution.StatusExtracting || p.Current == 0) {
					fmt.Printf("%6.3f %s %s %s\n", time.Since(t0).Seconds(), p.ID, p.Status, p.Detail)
				}
			}
		}
		if _, err := distribution.New(s, distribution.Options{}).Pull(ctx, ref, opts); err != nil {
			log.Fatal(err)
		}
		pulls = append(pulls, time.Since(t0).Seconds())
		s.Close()
	}
	d, g, p := median(dl), median(gz), median(pulls)
	fmt.Printf("download only:        %.2f s (median of %d: %v)\n", d, *runs, round(dl))
	fmt.Printf("gunzip, one core:     %.2f s (%v)\n", g, round(gz))
	fmt.Printf("berth pull, cold:     %.2f s (%v)\n", p, round(pulls))
	fmt.Printf("pull / (download + gunzip) = %.2f\n", p/(d+g))
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
