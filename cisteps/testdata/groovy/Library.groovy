// Stand-in for Jenkins' @Library annotation (Pipeline: Shared Groovy
// Libraries), so that a Jenkinsfile parses outside Jenkins.
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy

@Retention(RetentionPolicy.SOURCE)
@interface Library {
    String[] value()
}
