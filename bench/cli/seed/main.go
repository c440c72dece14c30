// Command seed puts a busybox image (from Debian's busybox-static) into a
// berth root before a daemon opens it, so bench/cli needs no registry.
//
// Usage: go run ./bench/cli/seed ROOT NAME
package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/testutil"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: seed ROOT NAME")
		os.Exit(2)
	}
	if err := seed(context.Background(), os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func seed(ctx context.Context, root, name string) error {
	dir, err := os.MkdirTemp("", "berth-seed")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := testutil.MakeBusyboxRootfs(dir); err != nil {
		return fmt.Errorf("busybox rootfs: %w", err)
	}
	s, err := image.Open(ctx, root, image.Options{})
	if err != nil {
		return fmt.Errorf("open image store: %w", err)
	}
	defer s.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, dir)) }()
	cfg := v1.Image{Config: v1.ImageConfig{
		Cmd: []string{"sh"},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}, History: []v1.History{{CreatedBy: "berth bench seed: busybox-static"}}} // podman wants one entry per layer
	if _, err := s.CreateFromLayers(ctx, name, cfg, pr); err != nil {
		return fmt.Errorf("create image: %w", err)
	}
	return nil
}

// writeTar writes dir as a layer tar; hard links stay links so the layer
// holds busybox once.
func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	seen := map[uint64]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = rel
		if fi.Mode().IsRegular() {
			ino := inode(fi)
			if first, ok := seen[ino]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(hdr)
			}
			seen[ino] = rel
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
