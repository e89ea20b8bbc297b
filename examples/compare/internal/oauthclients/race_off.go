//go:build !race

package oauthclients

// raceDetector says whether the race detector is on.
const raceDetector = false
