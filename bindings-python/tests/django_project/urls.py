from django.urls import path

from django_project.tasks import views

urlpatterns = [
    path("run/<str:key>", views.run),
    path("held/<str:key>", views.held),
]
