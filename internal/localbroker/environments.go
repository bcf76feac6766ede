package localbroker

import (
	"fmt"
	"path/filepath"
)

// LocalEnvironment is the environment name local mode's environments file
// gives the broker: `deploy-trigger runs --env local` needs nothing else,
// as `--env production` needs nothing else against a deployed stack (the
// broker's published view names the rest).
const LocalEnvironment = "local"

// writeEnvironmentsFile writes environments.yaml in dir, naming the broker's
// topic as environment LocalEnvironment, and returns its absolute path.
func (b *Broker) writeEnvironmentsFile(dir string) (string, error) {
	path, err := filepath.Abs(filepath.Join(dir, "environments.yaml"))
	if err != nil {
		return "", err
	}
	content := fmt.Sprintf("# deploy-broker local mode: deploy-trigger --env %s names this broker;\n# the rest comes from its published view.\nenvironments:\n  %s:\n    topic_arn: %s\n",
		LocalEnvironment, LocalEnvironment, b.TopicARN())
	if err := writePrivate(path, []byte(content)); err != nil { // .local is the user's alone (private.go)
		return "", err
	}
	return path, nil
}
