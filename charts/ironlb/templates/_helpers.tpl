{{/*
The namespace of every namespaced object: namespaceOverride, else the
release's.
*/}}
{{- define "ironlb.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/*
Labels of every object. The names of ironlb's objects are fixed (speakers
find their Secret, tools find the pods by component), so one release per
cluster. Call with (dict "ctx" $ "component" "controller"); component may
be empty.
*/}}
{{- define "ironlb.labels" -}}
app.kubernetes.io/name: ironlb
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of a component's pods. */}}
{{- define "ironlb.selectorLabels" -}}
app.kubernetes.io/name: ironlb
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ironlb.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Whether the speaker DaemonSet runs ("true" or ""). */}}
{{- define "ironlb.speakerEnabled" -}}
{{- if .Values.speaker.enabled }}true{{ end -}}
{{- end -}}
