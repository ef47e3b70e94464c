package testbed

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// NrHugepages2M is the kernel's count of reserved 2 MiB huge pages
// (vm.nr_hugepages for the default size).
const NrHugepages2M = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

const freeHugepages2M = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

// ReserveHugepages makes sure n 2 MiB huge pages are free, raising the
// kernel's reservation by what is missing. It returns what the setting
// held before ("" when nothing changed: enough were free), for the caller
// to write back to NrHugepages2M when done, and to record for the sweeper
// before a run that is killed can leave 2 MiB x n of the host's memory
// reserved. It fails when the kernel finds too little memory for them.
func ReserveHugepages(n int) (before string, err error) {
	free, err := readInt(freeHugepages2M)
	if err != nil {
		return "", err
	}
	if free >= n {
		return "", nil
	}
	b, err := os.ReadFile(NrHugepages2M)
	if err != nil {
		return "", err
	}
	before = strings.TrimSpace(string(b))
	total, err := strconv.Atoi(before)
	if err != nil {
		return "", fmt.Errorf("%s: %q", NrHugepages2M, before)
	}
	if err := os.WriteFile(NrHugepages2M, []byte(strconv.Itoa(total+n-free)), 0o644); err != nil {
		return before, err
	}
	if got, err := readInt(freeHugepages2M); err != nil || got < n {
		return before, fmt.Errorf("asked the kernel for %d more 2 MiB huge pages; %d are free (%v): too little unfragmented memory", n-free, got, err)
	}
	return before, nil
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
