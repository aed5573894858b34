// Command notes is an ordinary net/http JSON service that became a Kouple module by changing only this file:
// where it used to call http.ListenAndServe(":8080", newServer()), it now registers its handler with the SDK.
// Built natively it still listens on a port by itself.
package main

import "github.com/kouple/kouple/sdk"

// LogRequests logs one structured line per request (`kouple logs notes`).
func init() { sdk.Handle(sdk.LogRequests(newServer())) }

func main() { sdk.Serve() }
