#!/bin/sh
# One way to set the JIRA HOME path is here via this variable.
JIRA_HOME="/var/atlassian/application-data/jira"

JVM_MINIMUM_MEMORY="2048m"
JVM_MAXIMUM_MEMORY="4096m"
JVM_SUPPORT_RECOMMENDED_ARGS="-Djavax.net.ssl.trustStorePassword=TrustDemoPass -Datlassian.recovery.password=RecoveryDemo1 -Djava.rmi.server.hostname=jira01.acme-corp.example"
JVM_GC_ARGS="-XX:+ExplicitGCInvokesConcurrent"
JVM_CODE_CACHE_ARGS='-XX:InitialCodeCacheSize=32m -XX:ReservedCodeCacheSize=512m'
export JAVA_OPTS="-Xms${JVM_MINIMUM_MEMORY} -Xmx${JVM_MAXIMUM_MEMORY} ${JVM_GC_ARGS} ${JVM_SUPPORT_RECOMMENDED_ARGS}"
export DB_PASSWORD="ShellDemoSecret"
