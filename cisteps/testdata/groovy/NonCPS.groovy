// Stand-in for Jenkins' com.cloudbees.groovy.cps.NonCPS, which Jenkins
// imports into every pipeline script; here it only has to resolve.
import java.lang.annotation.ElementType
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import java.lang.annotation.Target

@Retention(RetentionPolicy.RUNTIME)
@Target([ElementType.METHOD])
@interface NonCPS {}
