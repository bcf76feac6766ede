package iamcheck

import (
	"strings"

	"github.com/deploy-broker/deploy-broker/infra/internal/naming"
	"github.com/deploy-broker/deploy-broker/internal/config"
)

// AddByHand adds the calls AWS makes that local mode cannot produce, each
// with what it stands for.
func (p *Replay) AddByHand(cfg *config.Config) {
	p.addRunLogWrites(cfg)
	p.addViewers(cfg)
}

// addRunLogWrites: ECS pulls each job's image and writes its output with
// the execution role.
func (p *Replay) addRunLogWrites(cfg *config.Config) {
	s := p.Stack
	r := s.Roles["execution"]
	if r == nil {
		return
	}
	exec := Request{Origin: "by hand", Caller: r.Name, PrincipalARN: r.ARN, Identity: r.Policies,
		Principal: "arn:aws:sts::" + Account + ":assumed-role/" + r.ARN[strings.LastIndex(r.ARN, "/")+1:] + "/ecs-task-start"}
	for _, name := range cfg.JobNames() {
		// ECS pulls the job's image with the execution role; local mode
		// runs the runner binary on the host.
		image := cfg.Jobs[name].Image
		if image == "" {
			image = cfg.Runner.Image
		}
		if img, ok := naming.ParseECRImage(image); ok {
			r := exec
			r.Note = "ECS pulls job " + name + "'s image (local mode runs the runner on the host)"
			r.Action, r.Resource = "ecr:GetAuthorizationToken", "*"
			p.push(r)
			for _, a := range []string{"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"} {
				r.Action, r.Resource = a, img.RepositoryARN()
				p.push(r)
			}
		}
		// The awslogs driver writes the task's output to the run log with
		// the execution role; local mode's agent writes it itself.
		if lg := s.Resources["run-log-group"]; lg != "" {
			r := exec
			r.Note = "ECS's awslogs driver writes job " + name + "'s output to the run log"
			for _, a := range []string{"logs:CreateLogStream", "logs:PutLogEvents"} {
				r.Action, r.Resource = a, lg+":log-stream:"+name+"/runner/0123456789abcdef"
				p.push(r)
			}
		}
	}
}

// addViewers: a viewer assumes the reader role (deploy-trigger runs
// --role-arn); local mode reads with the CI session itself.
func (p *Replay) addViewers(cfg *config.Config) {
	if rd := p.Stack.Roles["reader"]; rd != nil {
		for _, v := range cfg.ViewerPrincipals() {
			who := v
			if len(v) == 12 {
				who = "arn:aws:iam::" + v + ":role/viewer"
			}
			if !strings.Contains(who, ":role/") {
				continue
			}
			parts := strings.Split(who, "/")
			session := "arn:aws:sts::" + accountOf(who) + ":assumed-role/" + parts[len(parts)-1] + "/viewer"
			trust := rd.Trust
			p.push(Request{Origin: "by hand", Note: "a viewer assumes the reader role (local mode reads with the CI session)",
				Caller: who, Principal: session, PrincipalARN: who, Identity: []Policy{ciPolicy},
				Action: "sts:AssumeRole", Resource: rd.ARN, ResourcePolicy: &trust})
		}
	}
}
