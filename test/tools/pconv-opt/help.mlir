// --help names every pass with a one-line summary; --list-passes prints the same listing.
// RUN: pconv-opt --help | filecheck %s
// RUN: pconv-opt --list-passes | filecheck %s --check-prefix=LIST

// CHECK:       usage: pconv-opt
// CHECK:       pconv passes:
// CHECK:       upstream xDSL passes:
// CHECK:         canonicalize {{ +}}{{[A-Z].+}}
// CHECK:         cse {{ +}}{{[A-Z].+}}
// LIST:        pconv passes:
// LIST:        upstream xDSL passes:
// LIST:          canonicalize
