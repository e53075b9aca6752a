// Package platform is the shared infrastructure of Gatehouse's services.
package platform
