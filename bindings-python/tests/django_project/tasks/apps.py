from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "django_project.tasks"
    label = "tasks"
