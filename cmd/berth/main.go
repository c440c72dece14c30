// Command berth is the single binary of the berth container platform.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "berth: not yet wired")
	os.Exit(1)
}
